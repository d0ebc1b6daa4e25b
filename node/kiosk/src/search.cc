#include "outpost/kiosk/search.h"

#include <xapian.h>

#include <filesystem>
#include <map>
#include <mutex>

#include "outpost/kiosk/text.h"

namespace outpost::kiosk {

namespace {

// What the documents hold (docs/kiosk.md, "Search"): a title entry and one per paragraph, the
// bundle in value slot 0.
constexpr const char* kFormat = "kiosk-index-2";

const char* stemmer_name(const std::string& lang) {
  if (lang == "en") return "english";
  if (lang == "fr") return "french";
  if (lang == "es") return "spanish";
  if (lang == "ru") return "russian";
  if (lang == "ar") return "arabic";
  if (lang == "pt") return "portuguese";
  if (lang == "de") return "german";
  return "";
}

Xapian::Stem stemmer(const std::string& lang) {
  const char* name = stemmer_name(lang);
  if (*name == 0) return Xapian::Stem();
  try {
    return Xapian::Stem(name);
  } catch (const Xapian::Error&) {
    return Xapian::Stem();  // a Xapian without this language: words unstemmed
  }
}

std::string unit(const std::string& bundle) {
  // Xapian terms are at most 245 bytes.
  return "XB" + std::string(utf8_prefix(bundle, 200));
}

std::string field(const std::string& data, int n) {
  std::size_t at = 0;
  for (int i = 0; i < n; ++i) {
    at = data.find('\x1f', at);
    if (at == std::string::npos) return "";
    ++at;
  }
  return data.substr(at, data.find('\x1f', at) - at);
}

// The versions and notes an index records (std::invalid_argument: a version that is not a
// number).
void read_bookkeeping(const Xapian::Database& db, std::map<std::string, std::uint64_t>* versions,
                      std::map<std::string, std::string>* notes) {
  versions->clear();
  for (auto it = db.metadata_keys_begin("v:"); it != db.metadata_keys_end("v:"); ++it) {
    const std::string key = *it;
    const std::string value = db.get_metadata(key);
    if (!value.empty()) (*versions)[key.substr(2)] = std::stoull(value);
  }
  notes->clear();
  for (auto it = db.metadata_keys_begin("n:"); it != db.metadata_keys_end("n:"); ++it) {
    const std::string key = *it;
    (*notes)[key.substr(2)] = db.get_metadata(key);
  }
}

}  // namespace

struct SearchIndex::Impl {
  std::string dir;
  std::mutex write_mu;
  // Open only while there is something to write (between replace/remove and commit): an idle
  // kiosk holds no writer's buffers or lock.
  std::unique_ptr<Xapian::WritableDatabase> db;
  std::map<std::string, std::uint64_t> versions;  // what the index holds, read once at open
  std::map<std::string, std::string> notes;       // set_note(), read once at open

  Status writable() {
    if (db) return Status::Ok();
    try {
      db = std::make_unique<Xapian::WritableDatabase>(dir, Xapian::DB_CREATE_OR_OPEN);
    } catch (const Xapian::Error& e) {
      return Status::FailedPrecondition("cannot open the kiosk's search index " + dir + ": " +
                                        e.get_msg());
    }
    return Status::Ok();
  }
  std::mutex readers_mu;
  std::vector<std::unique_ptr<Xapian::Database>> readers;  // idle ones
};

SearchIndex::SearchIndex(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SearchIndex::~SearchIndex() = default;

Result<std::unique_ptr<SearchIndex>> SearchIndex::open(const std::string& dir) {
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  for (int attempt = 0; attempt < 2; ++attempt) {
    try {
      impl->db = std::make_unique<Xapian::WritableDatabase>(dir, Xapian::DB_CREATE_OR_OPEN);
      // An index of another layout (an older kiosk) is rebuilt like a damaged one.
      if (impl->db->get_metadata("format") != kFormat) {
        if (impl->db->get_doccount() != 0 && attempt == 0)
          throw Xapian::DatabaseCorruptError("old format");
        impl->db->set_metadata("format", kFormat);
        impl->db->commit();
      }
      read_bookkeeping(*impl->db, &impl->versions, &impl->notes);
      impl->db.reset();
      break;
    } catch (const Xapian::DatabaseLockError&) {
      return Status::FailedPrecondition("the kiosk's search index " + dir +
                                        " is in use by another process: stop it, or give this "
                                        "kiosk its own kiosk.index folder");
    } catch (const Xapian::Error& e) {
      if (attempt == 1) {
        return Status::FailedPrecondition("cannot create the kiosk's search index in " + dir +
                                          ": " + e.get_msg() +
                                          ": check the folder's permissions or set kiosk.index");
      }
    } catch (const std::exception&) {  // a version that is not a number
      if (attempt == 1)
        return Status::Internal("the kiosk's search index " + dir + " is unreadable");
    }
    // Damaged or from another Xapian version: it is only a cache of the store.
    impl->db.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  return std::unique_ptr<SearchIndex>(new SearchIndex(std::move(impl)));
}

Result<std::vector<std::pair<std::string, std::uint64_t>>> SearchIndex::versions() {
  std::lock_guard lock(impl_->write_mu);
  return std::vector<std::pair<std::string, std::uint64_t>>(impl_->versions.begin(),
                                                            impl_->versions.end());
}

Status SearchIndex::replace(const std::string& bundle, std::uint64_t version,
                            const std::vector<IndexedText>& texts) {
  std::lock_guard lock(impl_->write_mu);
  OUTPOST_RETURN_IF_ERROR(impl_->writable());
  try {
    impl_->db->delete_document(unit(bundle));
    for (const auto& t : texts) {
      Xapian::TermGenerator gen;
      gen.set_stemmer(stemmer(t.language));
      gen.set_stemming_strategy(Xapian::TermGenerator::STEM_SOME);
      // CJK n-grams apply to Chinese, Japanese and Korean characters only, whatever the
      // document's declared language: a Chinese phrase quoted in an English text is found too.
      gen.set_flags(Xapian::TermGenerator::FLAG_CJK_NGRAM);
      auto add = [&](const std::string& anchor, const std::string& text, const std::string& title) {
        Xapian::Document doc;
        gen.set_document(doc);
        if (!title.empty()) {
          gen.index_text(title, 2);
          gen.increase_termpos();
        }
        gen.index_text(text);
        doc.add_boolean_term(unit(t.bundle));
        doc.add_value(0, unit(t.bundle));
        doc.add_boolean_term("XL" + t.language);
        doc.set_data(t.bundle + '\x1f' + t.language + '\x1f' + t.title + '\x1f' + anchor + '\x1f' +
                     text);
        impl_->db->add_document(doc);
      };
      // One entry for the title (and text outside any paragraph, e.g. an indicator's
      // description), one per paragraph. A search over every document collapses them by
      // bundle (value slot 0), so each document shows once, with its best paragraph.
      std::string head = t.title;
      for (const auto& p : t.paragraphs) {
        if (p.anchor.empty() && !p.text.empty()) head += "\n" + p.text;
      }
      add("", head, t.title);
      for (const auto& p : t.paragraphs) {
        if (!p.anchor.empty() && !p.text.empty()) add(p.anchor, p.text, "");
      }
    }
    impl_->db->set_metadata("v:" + bundle, std::to_string(version));
    impl_->versions[bundle] = version;
  } catch (const Xapian::Error& e) {
    return Status::Internal("indexing " + bundle + ": " + e.get_msg());
  }
  return Status::Ok();
}

Status SearchIndex::remove(const std::string& bundle) {
  std::lock_guard lock(impl_->write_mu);
  OUTPOST_RETURN_IF_ERROR(impl_->writable());
  try {
    impl_->db->delete_document(unit(bundle));
    impl_->db->set_metadata("v:" + bundle, "");
    impl_->versions.erase(bundle);
  } catch (const Xapian::Error& e) {
    return Status::Internal("removing " + bundle + " from the index: " + e.get_msg());
  }
  return Status::Ok();
}

Status SearchIndex::set_note(const std::string& key, const std::string& value) {
  std::lock_guard lock(impl_->write_mu);
  OUTPOST_RETURN_IF_ERROR(impl_->writable());
  try {
    impl_->db->set_metadata("n:" + key, value);
    impl_->notes[key] = value;
  } catch (const Xapian::Error& e) {
    return Status::Internal("saving " + key + " in the kiosk's index: " + e.get_msg());
  }
  return Status::Ok();
}

std::string SearchIndex::note(const std::string& key) {
  std::lock_guard lock(impl_->write_mu);
  auto it = impl_->notes.find(key);
  return it == impl_->notes.end() ? "" : it->second;
}

Status SearchIndex::commit() {
  std::lock_guard lock(impl_->write_mu);
  if (!impl_->db) return Status::Ok();
  try {
    impl_->db->commit();
    impl_->db.reset();
  } catch (const Xapian::Error& e) {
    return Status::ResourceExhausted("saving the kiosk's search index " + impl_->dir + ": " +
                                     e.get_msg() + ": is the disk full?");
  }
  return Status::Ok();
}

Status SearchIndex::reload() {
  std::map<std::string, std::uint64_t> versions;
  std::map<std::string, std::string> notes;
  try {
    Xapian::Database db(impl_->dir);
    read_bookkeeping(db, &versions, &notes);
  } catch (const Xapian::Error& e) {
    return Status::Unavailable("cannot read the kiosk's search index " + impl_->dir + ": " +
                               e.get_msg());
  } catch (const std::exception&) {
    return Status::Corruption("the kiosk's search index " + impl_->dir + " is unreadable");
  }
  std::lock_guard lock(impl_->write_mu);
  impl_->versions.swap(versions);
  impl_->notes.swap(notes);
  return Status::Ok();
}

void SearchIndex::reallocate() {
  std::lock_guard lock(impl_->write_mu);
  auto versions = impl_->versions;
  auto notes = impl_->notes;
  impl_->versions.swap(versions);
  impl_->notes.swap(notes);
}

SearchResults SearchIndex::search(const SearchQuery& q) {
  SearchResults out;
  const std::string text = valid_utf8(utf8_prefix(q.text, kMaxQueryBytes));
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) return out;

  std::unique_ptr<Xapian::Database> db;
  {
    std::lock_guard lock(impl_->readers_mu);
    if (!impl_->readers.empty()) {
      db = std::move(impl_->readers.back());
      impl_->readers.pop_back();
    }
  }
  for (int attempt = 0; attempt < 3; ++attempt) {
    try {
      if (!db) {
        db = std::make_unique<Xapian::Database>(impl_->dir);
      } else {
        db->reopen();
      }
      const Xapian::Stem stem = stemmer(q.language);
      Xapian::QueryParser qp;
      qp.set_database(*db);
      qp.set_stemmer(stem);
      qp.set_stemming_strategy(Xapian::QueryParser::STEM_SOME);
      qp.set_default_op(Xapian::Query::OP_AND);
      const unsigned cjk = Xapian::QueryParser::FLAG_CJK_NGRAM;
      Xapian::Query query;
      try {
        query = qp.parse_query(text, Xapian::QueryParser::FLAG_PHRASE |
                                         Xapian::QueryParser::FLAG_BOOLEAN |
                                         Xapian::QueryParser::FLAG_LOVEHATE | cjk);
      } catch (const Xapian::QueryParserError&) {
        // Unbalanced quotes or a stray operator: read every word as a word.
        out.problem = "words";
        query = qp.parse_query(text, cjk);
      }
      Xapian::Enquire enquire(*db);
      if (q.bundle.empty()) {
        enquire.set_collapse_key(0);
      } else {
        query = Xapian::Query(Xapian::Query::OP_FILTER, query, Xapian::Query(unit(q.bundle)));
      }
      enquire.set_query(query);
      enquire.set_time_limit(0.5);
      Xapian::MSet mset = enquire.get_mset(q.offset, std::min<std::uint32_t>(q.count, 50));
      out.estimated = mset.get_matches_estimated();
      for (auto it = mset.begin(); it != mset.end(); ++it) {
        const std::string data = it.get_document().get_data();
        SearchHit h;
        h.bundle = field(data, 0);
        h.language = field(data, 1);
        h.title = field(data, 2);
        h.anchor = field(data, 3);
        const std::string body =
            data.substr(std::min(data.size(), h.bundle.size() + h.language.size() + h.title.size() +
                                                  h.anchor.size() + 4));
        // snippet() escapes the text for HTML and marks the matches.
        h.snippet_html =
            mset.snippet(body, 240, stemmer(h.language),
                         Xapian::MSet::SNIPPET_BACKGROUND_MODEL | Xapian::MSet::SNIPPET_EXHAUSTIVE |
                             Xapian::MSet::SNIPPET_CJK_NGRAM,
                         "<mark>", "</mark>", "\xE2\x80\xA6");
        out.hits.push_back(std::move(h));
      }
      break;
    } catch (const Xapian::DatabaseModifiedError&) {
      continue;  // the writer committed meanwhile: reopen and ask again
    } catch (const Xapian::DatabaseOpeningError&) {
      out.problem = "unavailable";  // not built yet
      db.reset();
      break;
    } catch (const Xapian::Error&) {
      out.problem = "unavailable";
      db.reset();
      break;
    }
  }
  if (db) {
    std::lock_guard lock(impl_->readers_mu);
    if (impl_->readers.size() < 8) impl_->readers.push_back(std::move(db));
  }
  return out;
}

}  // namespace outpost::kiosk

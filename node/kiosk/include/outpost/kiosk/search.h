// The kiosk's full-text index (Xapian 1.4, a folder of its own beside the store): one document
// per bundle and language (title and text) and one per paragraph (for search within a
// document). Stemming for the languages Xapian has a stemmer for (English, French, Arabic,
// Spanish, Russian, ...), CJK n-grams for Chinese. Snippets with the matched terms in <mark>.
//
// Thread-safety: one writer (the kiosk's watcher thread, or its worker process, calls
// add/remove/commit); search() from any number of threads at once, each on its own reader,
// never waiting for the writer (a reader sees the last commit). No Xapian exception leaves
// this class.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "outpost/base/status.h"
#include "outpost/kiosk/markdown.h"

namespace outpost::kiosk {

struct IndexedText {
  std::string bundle;  // "un/ga/A-RES-75-202"
  std::string kind;    // "resolution", "indicator"
  std::string language;
  std::string title;
  std::vector<DocParagraph> paragraphs;  // empty for a title-only entry (indicators)
};

struct SearchHit {
  std::string bundle, language, title;
  std::string anchor;        // paragraph hits: "p16"; document hits: ""
  std::string snippet_html;  // escaped text with <mark> around the matches
};

struct SearchResults {
  std::uint64_t estimated = 0;  // matches, about
  std::vector<SearchHit> hits;
  std::string problem;  // a query that could not be read as asked (it was searched as words)
};

struct SearchQuery {
  std::string text;      // as typed; cut to kMaxQueryBytes, invalid UTF-8 repaired
  std::string language;  // the stemmer to read it with ("en")
  std::string bundle;    // "": every document; else paragraphs of this bundle only
  std::uint32_t offset = 0;
  std::uint32_t count = 10;
};

inline constexpr std::size_t kMaxQueryBytes = 256;

class SearchIndex {
 public:
  // Opens or creates the index in dir; a damaged or unreadable one is removed and made anew
  // (the caller re-adds everything: versions() is then empty).
  static Result<std::unique_ptr<SearchIndex>> open(const std::string& dir);
  ~SearchIndex();

  // bundle -> version indexed, as recorded by set_version.
  Result<std::vector<std::pair<std::string, std::uint64_t>>> versions();
  // Replaces everything indexed for a bundle by texts (one per language), recorded as version.
  Status replace(const std::string& bundle, std::uint64_t version,
                 const std::vector<IndexedText>& texts);
  Status remove(const std::string& bundle);
  // A small value the kiosk keeps with its index (what changed in the last sync), saved by the
  // next commit(); read back after a restart. Lost with the index, which is a cache.
  Status set_note(const std::string& key, const std::string& value);
  // The value saved under key (as of open(), or set since); "" when none.
  std::string note(const std::string& key);
  // Saves what replace/remove/set_note did and closes the writer (an idle kiosk holds no
  // writer's buffers). kResourceExhausted when the disk is full.
  Status commit();

  SearchResults search(const SearchQuery& q);

  // Reads the versions and notes again from the folder, after another process (the kiosk's
  // indexing worker) wrote the index; searches see its commits by themselves.
  Status reload();

  // Copies the index's bookkeeping (versions, notes) into memory the calling thread allocates,
  // so that a thread that indexed and ends leaves nothing of its own behind.
  void reallocate();

  struct Impl;

 private:
  explicit SearchIndex(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace outpost::kiosk

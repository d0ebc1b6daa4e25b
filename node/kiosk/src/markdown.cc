#include "outpost/kiosk/markdown.h"

#include <cmark.h>

#include <cstdint>
#include <map>
#include <memory>
#include <set>

#include "outpost/kiosk/catalog.h"
#include "outpost/kiosk/text.h"

namespace outpost::kiosk {

namespace {

struct NodeFree {
  void operator()(cmark_node* n) const { cmark_node_free(n); }
};
struct IterFree {
  void operator()(cmark_iter* i) const { cmark_iter_free(i); }
};

// The value of the superscript digit at s[i] (UTF-8), its byte length in *len; -1 if none.
int superscript_digit(std::string_view s, std::size_t i, std::size_t* len) {
  auto u = [&](std::size_t k) { return static_cast<std::uint8_t>(s[i + k]); };
  if (i + 1 < s.size() && u(0) == 0xC2) {
    *len = 2;
    if (u(1) == 0xB9) return 1;
    if (u(1) == 0xB2) return 2;
    if (u(1) == 0xB3) return 3;
  }
  if (i + 2 < s.size() && u(0) == 0xE2 && u(1) == 0x81) {
    *len = 3;
    if (u(2) == 0xB0) return 0;
    if (u(2) >= 0xB4 && u(2) <= 0xB9) return u(2) - 0xB0;
  }
  return -1;
}

// A run of superscript digits at s[i]: its number (capped) and byte length; 0 length if none.
std::size_t superscript_number(std::string_view s, std::size_t i, int* number) {
  std::size_t at = i;
  int n = 0;
  std::size_t len = 0;
  int d;
  while (at < s.size() && (d = superscript_digit(s, at, &len)) >= 0) {
    if (n < 100000) n = n * 10 + d;
    at += len;
  }
  *number = n;
  return at - i;
}

bool safe_url(std::string_view url) {
  auto starts = [&](std::string_view p) {
    if (url.size() < p.size()) return false;
    for (std::size_t i = 0; i < p.size(); ++i) {
      if (std::tolower(static_cast<unsigned char>(url[i])) != p[i]) return false;
    }
    return true;
  };
  if (url.size() > 1 && url[0] == '#') return true;
  return starts("https://") || starts("http://") || starts("mailto:");
}

void plain_text(cmark_node* root, std::string* out) {
  std::unique_ptr<cmark_iter, IterFree> it(cmark_iter_new(root));
  cmark_event_type ev;
  while ((ev = cmark_iter_next(it.get())) != CMARK_EVENT_DONE) {
    cmark_node* n = cmark_iter_get_node(it.get());
    if (ev != CMARK_EVENT_ENTER) continue;
    switch (cmark_node_get_type(n)) {
      case CMARK_NODE_TEXT:
      case CMARK_NODE_CODE:
      case CMARK_NODE_HTML_INLINE:
      case CMARK_NODE_CODE_BLOCK:
      case CMARK_NODE_HTML_BLOCK: {
        const char* lit = cmark_node_get_literal(n);
        if (lit != nullptr) *out += lit;
        break;
      }
      case CMARK_NODE_SOFTBREAK:
      case CMARK_NODE_LINEBREAK: *out += ' '; break;
      default: break;
    }
  }
}

class Renderer {
 public:
  Renderer(const MarkdownLabels& labels, const std::set<int>& notes)
      : labels_(labels), notes_(notes) {}

  // Renders the subtree at root; skip_prefix bytes of its first text node are left out (the
  // footnote marker of a note's paragraph).
  void render(cmark_node* root, std::string* out, std::size_t skip_prefix = 0) {
    std::unique_ptr<cmark_iter, IterFree> it(cmark_iter_new(root));
    cmark_event_type ev;
    bool first_text = true;
    while ((ev = cmark_iter_next(it.get())) != CMARK_EVENT_DONE) {
      cmark_node* n = cmark_iter_get_node(it.get());
      const bool enter = ev == CMARK_EVENT_ENTER;
      const char* lit = cmark_node_get_literal(n);
      const std::string_view literal = lit != nullptr ? lit : "";
      switch (cmark_node_get_type(n)) {
        case CMARK_NODE_DOCUMENT: break;
        case CMARK_NODE_BLOCK_QUOTE: *out += enter ? "<blockquote>" : "</blockquote>\n"; break;
        case CMARK_NODE_LIST: {
          const bool ordered = cmark_node_get_list_type(n) == CMARK_ORDERED_LIST;
          if (enter) {
            if (ordered) {
              int start = cmark_node_get_list_start(n);
              *out += start == 1 ? "<ol>" : "<ol start=\"" + std::to_string(start) + "\">";
            } else {
              *out += "<ul>";
            }
            *out += '\n';
          } else {
            *out += ordered ? "</ol>\n" : "</ul>\n";
          }
          break;
        }
        case CMARK_NODE_ITEM: {
          if (!enter) {
            *out += "</li>\n";
            break;
          }
          cmark_node* list = cmark_node_parent(n);
          int number = 0;
          if (list != nullptr && cmark_node_get_list_type(list) == CMARK_ORDERED_LIST) {
            number = cmark_node_get_list_start(list);
            for (cmark_node* p = cmark_node_previous(n); p != nullptr; p = cmark_node_previous(p)) {
              ++number;
            }
          }
          const bool top = list != nullptr && cmark_node_parent(list) != nullptr &&
                           cmark_node_get_type(cmark_node_parent(list)) == CMARK_NODE_DOCUMENT;
          if (top && number > 0 && ids_.insert("p" + std::to_string(number)).second) {
            *out += "<li id=\"p" + std::to_string(number) + "\">";
          } else {
            *out += "<li>";
          }
          break;
        }
        case CMARK_NODE_CODE_BLOCK:
          *out += "<pre><code>" + escape_html(literal) + "</code></pre>\n";
          break;
        case CMARK_NODE_HTML_BLOCK:
          // Documents are data: the HTML shows as text.
          *out += "<pre class=\"raw\">" + escape_html(literal) + "</pre>\n";
          break;
        case CMARK_NODE_CUSTOM_BLOCK:
        case CMARK_NODE_CUSTOM_INLINE: break;
        case CMARK_NODE_PARAGRAPH:
          if (enter) {
            std::string id = pending_id_;
            pending_id_.clear();
            *out += id.empty() ? "<p>" : "<p id=\"" + id + "\">";
          } else {
            *out += "</p>\n";
          }
          break;
        case CMARK_NODE_HEADING: {
          int level = cmark_node_get_heading_level(n) + 1;
          if (level > 6) level = 6;
          *out +=
              enter ? "<h" + std::to_string(level) + ">" : "</h" + std::to_string(level) + ">\n";
          break;
        }
        case CMARK_NODE_THEMATIC_BREAK: *out += "<hr>\n"; break;
        case CMARK_NODE_TEXT: {
          std::string_view t = literal;
          if (first_text) {
            t.remove_prefix(std::min(skip_prefix, t.size()));
            first_text = false;
          }
          text(t, out);
          break;
        }
        case CMARK_NODE_SOFTBREAK: *out += '\n'; break;
        case CMARK_NODE_LINEBREAK: *out += "<br>\n"; break;
        case CMARK_NODE_CODE: *out += "<code>" + escape_html(literal) + "</code>"; break;
        case CMARK_NODE_HTML_INLINE: *out += escape_html(literal); break;
        case CMARK_NODE_EMPH: *out += enter ? "<em>" : "</em>"; break;
        case CMARK_NODE_STRONG: *out += enter ? "<strong>" : "</strong>"; break;
        case CMARK_NODE_LINK: {
          const char* u = cmark_node_get_url(n);
          const std::string_view url = u != nullptr ? u : "";
          if (safe_url(url)) {
            *out += enter ? "<a href=\"" + escape_html(url) + "\">" : "</a>";
          }
          break;
        }
        case CMARK_NODE_IMAGE: *out += enter ? "<span class=\"img\">" : "</span>"; break;
        default: break;
      }
    }
  }

  bool has_id(const std::string& id) const { return ids_.count(id) != 0; }
  std::string pending_id_;

 private:
  void text(std::string_view t, std::string* out) {
    std::size_t from = 0;
    for (std::size_t i = 0; i < t.size(); ++i) {
      int number = 0;
      std::size_t len = superscript_number(t, i, &number);
      if (len == 0) continue;
      if (i > 0 && notes_.count(number) != 0) {
        *out += escape_html(t.substr(from, i - from));
        const std::string n = std::to_string(number);
        std::string ref_id = "fnref" + n;
        const bool first = ids_.insert(ref_id).second;
        *out += "<sup><a href=\"#fn" + n + "\"" + (first ? " id=\"" + ref_id + "\"" : "") +
                " aria-label=\"" + escape_html(fill(labels_.note, {{"n", n}})) + "\">" + n +
                "</a></sup>";
        from = i + len;
      }
      i += len - 1;
    }
    *out += escape_html(t.substr(from));
  }

  const MarkdownLabels& labels_;
  const std::set<int>& notes_;
  std::set<std::string> ids_;
};

}  // namespace

RenderedDocument render_markdown(std::string_view markdown, const MarkdownLabels& labels) {
  RenderedDocument doc;
  const std::string text = valid_utf8(markdown);
  std::unique_ptr<cmark_node, NodeFree> root(
      cmark_parse_document(text.data(), text.size(), CMARK_OPT_SAFE | CMARK_OPT_VALIDATE_UTF8));
  if (!root) return doc;

  // Pass 1: which top-level paragraphs are footnotes ("¹⁰ Resolution 70/1.").
  struct Note {
    cmark_node* node;
    std::size_t marker;  // bytes of the marker and the space after it
  };
  std::map<int, Note> notes;
  for (cmark_node* n = cmark_node_first_child(root.get()); n != nullptr; n = cmark_node_next(n)) {
    if (cmark_node_get_type(n) != CMARK_NODE_PARAGRAPH) continue;
    cmark_node* first = cmark_node_first_child(n);
    if (first == nullptr || cmark_node_get_type(first) != CMARK_NODE_TEXT) continue;
    const char* lit = cmark_node_get_literal(first);
    const std::string_view t = lit != nullptr ? lit : "";
    int number = 0;
    std::size_t len = superscript_number(t, 0, &number);
    if (len == 0 || number == 0 || notes.count(number) != 0) continue;
    std::size_t marker = len;
    while (marker < t.size() && t[marker] == ' ') ++marker;
    notes[number] = Note{n, marker};
  }
  std::set<int> numbers;
  for (const auto& [k, v] : notes) numbers.insert(k);

  // Pass 2: the text, without the notes.
  Renderer r(labels, numbers);
  std::size_t preamble = 0;
  for (cmark_node* n = cmark_node_first_child(root.get()); n != nullptr; n = cmark_node_next(n)) {
    bool is_note = false;
    for (const auto& [k, v] : notes) is_note = is_note || v.node == n;
    if (is_note) continue;
    const cmark_node_type type = cmark_node_get_type(n);
    if (type == CMARK_NODE_PARAGRAPH) {
      r.pending_id_ = "pp" + std::to_string(++preamble);
      DocParagraph p{r.pending_id_, ""};
      plain_text(n, &p.text);
      doc.paragraphs.push_back(std::move(p));
    } else if (type == CMARK_NODE_LIST && cmark_node_get_list_type(n) == CMARK_ORDERED_LIST) {
      int number = cmark_node_get_list_start(n);
      for (cmark_node* item = cmark_node_first_child(n); item != nullptr;
           item = cmark_node_next(item), ++number) {
        DocParagraph p{"p" + std::to_string(number), ""};
        plain_text(item, &p.text);
        doc.paragraphs.push_back(std::move(p));
      }
    } else {
      DocParagraph p{"", ""};
      plain_text(n, &p.text);
      if (!p.text.empty()) doc.paragraphs.push_back(std::move(p));
    }
    r.render(n, &doc.html);
  }

  // The notes, each linked back to its first reference.
  if (!notes.empty()) {
    doc.html += "<section class=\"notes\" aria-labelledby=\"notes\">\n<h2 id=\"notes\">" +
                escape_html(labels.notes) + "</h2>\n<ol>\n";
    for (const auto& [number, note] : notes) {
      const std::string n = std::to_string(number);
      doc.html += "<li id=\"fn" + n + "\" value=\"" + n + "\">";
      std::string body;
      r.render(note.node, &body, note.marker);
      // Drop the paragraph's own <p>...</p>\n so the back link sits on its line.
      if (body.rfind("<p>", 0) == 0 && body.size() >= 8) body = body.substr(3, body.size() - 8);
      doc.html += body;
      if (r.has_id("fnref" + n)) {
        doc.html += " <a href=\"#fnref" + n + "\" aria-label=\"" +
                    escape_html(fill(labels.back, {{"n", n}})) + "\">\xE2\x86\xA9</a>";
      }
      doc.html += "</li>\n";
      DocParagraph p{"fn" + n, ""};
      plain_text(note.node, &p.text);
      doc.paragraphs.push_back(std::move(p));
    }
    doc.html += "</ol>\n</section>\n";
    doc.footnotes = notes.size();
  }
  return doc;
}

}  // namespace outpost::kiosk

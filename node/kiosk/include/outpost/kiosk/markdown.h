// A resolution's Markdown as clean semantic HTML (cmark, CommonMark). Documents are data: raw
// HTML in them is shown as text, never passed through; links keep only http(s) and mailto
// targets and in-document anchors; images show their description. Numbered operative paragraphs
// ("16. *Recognizes* ...") get the stable anchor "p16"; other top-level paragraphs "pp1",
// "pp2", ... Footnotes as the UN publishes them (a paragraph starting with a superscript number
// "¹⁰ Resolution 70/1.", and the same superscript after a word in the text) are linked both
// ways and gathered at the end under a "Notes" heading. Pure; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace outpost::kiosk {

struct MarkdownLabels {
  std::string notes = "Notes";                        // heading of the footnotes
  std::string back = "Back to the text of note {n}";  // the back link's accessible name
  std::string note = "Note {n}";                      // a reference's accessible name
};

struct DocParagraph {
  std::string anchor;  // "p16", "pp3", "fn2"
  std::string text;    // plain text (for search and the text download)
};

struct RenderedDocument {
  std::string html;  // a fragment, to sit inside <article>
  std::vector<DocParagraph> paragraphs;
  std::size_t footnotes = 0;
};

// Never fails: malformed Markdown renders as CommonMark says (as text, mostly); invalid UTF-8
// becomes U+FFFD. Headings are shifted one level down (the page's <h1> is the title).
RenderedDocument render_markdown(std::string_view markdown, const MarkdownLabels& labels = {});

}  // namespace outpost::kiosk

// The kiosk's one stylesheet, served at a versioned address and cached forever. Plain CSS 2.1
// plus media queries, so old browsers lay it out too (no grid, flex, var() or calc(); the pages
// read in order without any stylesheet at all); no web fonts; sizes in em so 200 % text zoom
// reflows; colours meet WCAG AA contrast. Printed: black on white, without the header, forms
// and navigation, a document's outside links followed by their address, tables whole.
#pragma once

#include <string_view>

namespace outpost::kiosk {

inline constexpr std::string_view kStyle =
    R"css(html{font-family:"DejaVu Sans",Arial,sans-serif;line-height:1.5;color:#1a1a1a;background:#fff}
body{margin:0 auto;max-width:42em;padding:0 .75em;word-wrap:break-word;overflow-wrap:break-word}
a{color:#0b4f9c}
a:focus,button:focus,input:focus,select:focus,[tabindex]:focus{outline:3px solid #c25400;outline-offset:2px}
.skip{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
.skip:focus{position:static;width:auto;height:auto;clip:auto}
header{border-bottom:1px solid #888;padding:.5em 0}
.site{font-weight:bold;font-size:1.2em;margin:.2em 0}
.search label,.search-in label{display:block}
input,select,button{font:inherit;max-width:100%;-moz-box-sizing:border-box;box-sizing:border-box}
input[type=search]{width:14em}
button{padding:.2em .8em}
.langs ul,.doclangs ul,.actions{list-style:none;padding:0;margin:.4em 0}
.langs li,.doclangs li,.actions li{display:inline;margin:0 .8em 0 0}
[dir=rtl] .langs li,[dir=rtl] .doclangs li,[dir=rtl] .actions li{margin:0 0 0 .8em}
[aria-current]{font-weight:bold}
h1{font-size:1.5em;line-height:1.25}
h2{font-size:1.25em}
.meta{color:#4a4a4a;font-size:.9em}
.list li{margin:.6em 0}
.note{background:#f2f2f2;padding:.3em .5em}
.warn{background:#fff3cd;border:1px solid #8a6d00;padding:.3em .5em}
fieldset{border:1px solid #888;margin:.6em 0;min-width:0}
.filters label{display:block}
.doc p,.doc li{margin:.6em 0}
.doc li:target,.doc p:target{background:#fff3cd}
sup{line-height:0}
.scroll{overflow-x:auto}
table{border-collapse:collapse;margin:.5em 0}
caption{text-align:left;font-weight:bold}
[dir=rtl] caption{text-align:right}
th,td{border:1px solid #aaa;padding:.2em .4em;text-align:left;vertical-align:top}
[dir=rtl] th,[dir=rtl] td{text-align:right}
td.num{text-align:right}
.chart{margin:.5em 0}
svg{width:100%;height:auto;max-width:32em}
mark{background:#ffe066;color:#000}
.hits li{margin:.8em 0}
.snippet{margin:.2em 0}
dl.prov dt{font-weight:bold}
dl.prov dd{margin:0 0 .3em 0}
footer{border-top:1px solid #888;margin-top:2em;padding:.5em 0;font-size:.9em}
pre{white-space:pre-wrap;word-wrap:break-word}
@media print{header,nav,form,.actions,.doclangs,.pager,.skip{display:none}
html,body,a,mark,.meta,.note,.warn,th,td,caption,footer,pre,.doc li:target,.doc p:target{color:#000;background:#fff}
body{max-width:none;padding:0}
a{text-decoration:none}
.doc a[href^="http"]:after,.doc a[href^="mailto:"]:after{content:" <" attr(href) ">";font-size:.85em}
mark{font-weight:bold;text-decoration:underline}
.note,.warn{border:1px solid #000}
.scroll{overflow:visible}
table{width:100%}
th,td{border-color:#000;word-wrap:break-word;overflow-wrap:break-word}
thead{display:table-header-group}
tr,figure,svg{page-break-inside:avoid}
h1,h2,h3,caption{page-break-after:avoid}}
)css";

}  // namespace outpost::kiosk

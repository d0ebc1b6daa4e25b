// The kiosk in a real headless Chromium (Debian's, driven by playwright-core): every page type
// renders, search finds a phrase of resolution 75/202, the chart is drawn, the Arabic test
// bundle reads right to left, axe-core finds no WCAG 2.1 AA violation, the keyboard reaches
// every link, no page overflows a 320-pixel screen (also at 200 % text), and a 320-pixel
// screenshot of each page type is kept. Printed (print media, and a PDF of each page type kept
// beside the screenshots): no header, navigation or form, black text on white, a document's
// outside links followed by their address, nothing cut at the right edge. Without the stylesheet
// (an old browser, or the CSS not loaded): the text is there and every link and form control
// can be seen and reached with the keyboard.
//   node kiosk.mjs BASE_URL OUT_DIR NODE_MODULES_DIR
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';

const [base, out, modules] = process.argv.slice(2);
const require = createRequire(path.join(path.resolve(modules), 'x.js'));
const { chromium } = require('playwright-core');
const axeSource = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
fs.mkdirSync(out, { recursive: true });

const pages = [
  { name: 'home', url: '/' },
  { name: 'resolution', url: '/b/un/ga/A-RES-75-202' },
  { name: 'indicator', url: '/b/itu/ict/digital-divide-2019?series=Proportion+of+individuals+using+the+Internet' },
  { name: 'search', url: '/search?q=%22affordable+and+reliable+connectivity%22' },
  { name: 'search-in', url: '/search?q=gender&b=un%2Fga%2FA-RES-75-202' },
  { name: 'arabic', url: '/b/un/ga/TEST-75-202-MULTI?lang=ar&hl=ar' },
  { name: 'french', url: '/b/un/ga/TEST-75-202-MULTI?lang=fr&hl=fr' },
  { name: 'not-found', url: '/b/un/ga/NO-SUCH-BUNDLE', status: 404 },
];

// Presses Tab from the top of the page; returns [links the focus reached, links on the page].
async function keyboardReach(page) {
  const links = await page.evaluate(() => {
    const all = [...document.querySelectorAll('a[href]')];
    all.forEach((a, i) => a.setAttribute('data-k', String(i)));
    return all.length;
  });
  const controls = await page.evaluate(() => {
    window.reached = new Set();
    document.addEventListener('focusin', (e) => {
      const k = e.target.getAttribute && e.target.getAttribute('data-k');
      if (k !== null) window.reached.add(k);
    });
    if (document.activeElement) document.activeElement.blur();
    return document.querySelectorAll('a[href],input:not([type=hidden]),select,button,[tabindex]').length;
  });
  for (let i = 0; i < controls + 5; i++) await page.keyboard.press('Tab');
  const reached = await page.evaluate(() => window.reached.size);
  return [reached, links];
}

const failures = [];
const fail = (what) => { failures.push(what); console.log('FAIL: ' + what); };
const started = Date.now();
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking',
         '--disable-component-update', '--disable-sync', '--no-first-run'],
});
try {
  const context = await browser.newContext({ viewport: { width: 320, height: 640 } });
  for (const p of pages) {
    const page = await context.newPage();
    const csp = [];
    page.on('console', (m) => { if (m.type() === 'error') csp.push(m.text()); });
    const resp = await page.goto(base + p.url);
    const want = p.status || 200;
    if (resp.status() !== want) fail(`${p.name}: status ${resp.status()}, expected ${want}`);
    if (await page.locator('script').count() !== 0) fail(`${p.name}: the page has a script`);
    // Fits 320 pixels (wide tables scroll inside their own region).
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    if (width > 320) fail(`${p.name}: ${width} px wide at 320`);
    await page.screenshot({ path: path.join(out, `${p.name}-320.png`), fullPage: true });

    // axe-core, WCAG 2.0 and 2.1, A and AA. Injected through a CDP evaluation: the page's CSP
    // forbids inline script, which is the point.
    await page.evaluate(axeSource);
    const result = await page.evaluate(() =>
      window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } }));
    for (const v of result.violations) {
      fail(`${p.name}: axe ${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join('; ')}`);
    }

    // Keyboard only: Tab from the top reaches every link.
    const [reached, links] = await keyboardReach(page);
    if (reached !== links) fail(`${p.name}: the keyboard reached ${reached} of ${links} links`);
    for (const c of csp) if (/Content Security Policy|Refused/.test(c)) fail(`${p.name}: ${c}`);
    console.log(`ok ${p.name}: ${resp.status()}, ${links} links by keyboard, axe clean=${result.violations.length === 0}`);
    await page.close();
  }

  // Search from the form, as a visitor types it.
  const page = await context.newPage();
  await page.goto(base + '/');
  await page.fill('#q', '"affordable and reliable connectivity"');
  await Promise.all([page.waitForURL(/\/search\?/), page.keyboard.press('Enter')]);
  const marks = await page.locator('.snippet mark').allTextContents();
  if (!marks.some((m) => /affordable and reliable connectivity/i.test(m))) {
    fail(`search: no highlighted phrase in ${JSON.stringify(marks)}`);
  }
  await page.locator('.hits a').first().click();
  if (!/A-RES-75-202/.test(page.url())) fail(`search: the first hit leads to ${page.url()}`);

  // The chart is drawn: bars with a size, and a text alternative.
  await page.goto(base + pages[2].url);
  const bars = await page.locator('figure.chart svg rect').count();
  const box = await page.locator('figure.chart svg').boundingBox();
  const desc = await page.locator('figure.chart svg desc').textContent();
  if (bars < 2 || !box || box.width < 200) fail(`chart: ${bars} bars, box ${JSON.stringify(box)}`);
  if (!/World: 53.6/.test(desc || '')) fail(`chart: text alternative ${desc}`);

  // Arabic reads right to left, the document and the interface.
  await page.goto(base + pages[5].url);
  const dirs = await page.evaluate(() => [getComputedStyle(document.body).direction,
    getComputedStyle(document.querySelector('article')).direction, document.documentElement.lang]);
  if (dirs.join() !== 'rtl,rtl,ar') fail(`arabic: direction ${dirs}`);

  // 200 % text still fits 320 pixels (the stylesheet's sizes are in em).
  const zoomed = await browser.newContext({ viewport: { width: 320, height: 640 }, bypassCSP: true });
  for (const p of pages.slice(0, 3)) {
    const z = await zoomed.newPage();
    await z.goto(base + p.url);
    await z.addStyleTag({ content: 'html{font-size:200% !important}' });
    const w = await z.evaluate(() => document.documentElement.scrollWidth);
    if (w > 320) fail(`${p.name}: ${w} px wide at 200 % text`);
    await z.screenshot({ path: path.join(out, `${p.name}-320-zoom200.png`), fullPage: false });
    await z.close();
  }

  // Printed: what an A4 page holds at 96 dpi (210 mm less 12 mm margins each side, ~700 px).
  const printing = await browser.newContext({ viewport: { width: 700, height: 1000 } });
  for (const p of pages) {
    const pr = await printing.newPage();
    await pr.goto(base + p.url);
    await pr.emulateMedia({ media: 'print' });
    const r = await pr.evaluate(() => {
      const shown = (e) => e.getClientRects().length > 0;
      const rgb = (e, prop) => getComputedStyle(e)[prop];
      const root = document.documentElement;
      const h1 = document.querySelector('main h1');
      const cut = [...document.querySelectorAll('main table, main pre, main figure, main .scroll, footer')]
        .filter((e) => e.getBoundingClientRect().right > root.clientWidth + 1 || e.scrollWidth > e.clientWidth + 1)
        .map((e) => e.tagName + '.' + e.className);
      const outside = [...document.querySelectorAll('.doc a[href^="http"]')].map((a) =>
        [a.getAttribute('href'), getComputedStyle(a, '::after').content]);
      const coloured = [...document.querySelectorAll('main *, footer *')]
        .filter((e) => shown(e) && e.namespaceURI === 'http://www.w3.org/1999/xhtml' &&
                [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim()))
        .filter((e) => rgb(e, 'color') !== 'rgb(0, 0, 0)')
        .map((e) => e.tagName + ' ' + rgb(e, 'color'));
      return {
        visible: [...document.querySelectorAll('header, nav, form, .actions')].filter(shown).map((e) => e.tagName + '.' + e.className),
        width: root.scrollWidth,
        client: root.clientWidth,
        h1: h1 ? [shown(h1), h1.textContent.trim().length, rgb(h1, 'color')] : null,
        background: rgb(document.body, 'backgroundColor'),
        text: (document.querySelector('main').innerText || '').length,
        footer: shown(document.querySelector('footer')),
        cut, outside, coloured,
      };
    });
    if (r.visible.length) fail(`${p.name}: printed with ${r.visible.join(', ')}`);
    if (r.width > r.client) fail(`${p.name}: printed ${r.width} px wide on a ${r.client} px page`);
    if (r.cut.length) fail(`${p.name}: printed cut at the right edge: ${r.cut.join(', ')}`);
    if (!r.h1 || !r.h1[0] || r.h1[1] === 0 || r.h1[2] !== 'rgb(0, 0, 0)') fail(`${p.name}: printed title ${JSON.stringify(r.h1)}`);
    if (r.coloured.length) fail(`${p.name}: printed text not black: ${r.coloured.slice(0, 3).join('; ')}`);
    if (r.background !== 'rgb(255, 255, 255)') fail(`${p.name}: printed on ${r.background}`);
    if (r.text < 20 || !r.footer) fail(`${p.name}: printed ${r.text} characters of content, footer ${r.footer}`);
    for (const [href, after] of r.outside) {
      if (!after.includes(href)) fail(`${p.name}: printed link to ${href} without its address (${after})`);
    }
    if (p.name === 'french' || p.name === 'arabic') {
      if (r.outside.length !== 1) fail(`${p.name}: expected the test text's one outside link, found ${r.outside.length}`);
    }
    const pdf = await pr.pdf({ format: 'A4', margin: { top: '12mm', bottom: '12mm', left: '12mm', right: '12mm' } });
    if (pdf.length < 1000 || pdf.subarray(0, 5).toString() !== '%PDF-') fail(`${p.name}: PDF of ${pdf.length} bytes`);
    fs.writeFileSync(path.join(out, `${p.name}.pdf`), pdf);
    console.log(`ok ${p.name} printed: ${r.text} characters, ${r.outside.length} outside links with their address, PDF ${pdf.length} bytes`);
    await pr.close();
  }

  // An old browser, or a stylesheet that did not load: every page without any CSS.
  const bare = await browser.newContext({ viewport: { width: 320, height: 640 } });
  await bare.route(/\.css(\?|$)/, (route) => route.abort());
  for (const p of pages) {
    const b = await bare.newPage();
    const resp = await b.goto(base + p.url);
    if (resp.status() !== (p.status || 200)) fail(`${p.name} without CSS: status ${resp.status()}`);
    const r = await b.evaluate(() => {
      const shown = (e) => {
        const box = e.getBoundingClientRect();
        return e.getClientRects().length > 0 && box.width > 0 && box.height > 0 &&
          getComputedStyle(e).visibility !== 'hidden';
      };
      const h1 = document.querySelector('main h1');
      return {
        // The stylesheet sets body{max-width:42em}: 'none' proves it did not load.
        styled: getComputedStyle(document.body).maxWidth !== 'none',
        h1: h1 && shown(h1) ? h1.textContent.trim() : '',
        text: (document.querySelector('main').innerText || '').trim().length,
        hiddenLinks: [...document.querySelectorAll('a[href]')].filter((a) => !shown(a) && !a.classList.contains('skip'))
          .map((a) => a.getAttribute('href')),
        hiddenControls: [...document.querySelectorAll('input:not([type=hidden]),select,button')]
          .filter((c) => !shown(c) || c.disabled).map((c) => c.outerHTML.slice(0, 60)),
        labelled: [...document.querySelectorAll('input:not([type=hidden]),select')]
          .every((c) => c.id && document.querySelector(`label[for="${c.id}"]`)),
      };
    });
    if (r.styled) fail(`${p.name} without CSS: a stylesheet still applied`);
    if (!r.h1 || r.text < 20) fail(`${p.name} without CSS: title "${r.h1}", ${r.text} characters`);
    if (r.hiddenLinks.length) fail(`${p.name} without CSS: links not shown: ${r.hiddenLinks.slice(0, 3).join(', ')}`);
    if (r.hiddenControls.length) fail(`${p.name} without CSS: controls not shown: ${r.hiddenControls.slice(0, 2).join(', ')}`);
    if (!r.labelled) fail(`${p.name} without CSS: a form field without its label`);
    const [reached, links] = await keyboardReach(b);
    if (reached !== links) fail(`${p.name} without CSS: the keyboard reached ${reached} of ${links} links`);
    console.log(`ok ${p.name} without CSS: "${r.h1.slice(0, 40)}", ${links} links by keyboard`);
    await b.close();
  }
  // The search form still works unstyled.
  const bs = await bare.newPage();
  await bs.goto(base + '/');
  await bs.fill('#q', 'affordable');
  await Promise.all([bs.waitForURL(/\/search\?/), bs.keyboard.press('Enter')]);
  if (await bs.locator('.hits a').count() === 0) fail('search without CSS: no result');
  await bs.screenshot({ path: path.join(out, 'search-no-css-320.png'), fullPage: false });
} finally {
  await browser.close();
}
console.log(`${failures.length === 0 ? 'PASS' : 'FAIL'}: ${pages.length} page types in ${((Date.now() - started) / 1000).toFixed(1)} s; screenshots in ${out}`);
process.exit(failures.length === 0 ? 0 : 1);

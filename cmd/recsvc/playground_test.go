package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/novarec/novarec/apikey"
)

// screenshots, when set, is where TestPlaygroundInBrowser writes its
// screenshots (docs/ keeps them: go test ./cmd/recsvc -run Playground
// -screenshots ../../docs).
var screenshots = flag.String("screenshots", "", "write the playground's screenshots (PNG) into this directory")

// browser finds Debian's chromium (or another Chrome) on PATH.
func browser() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// console collects what a page logs as errors: calls of the console API,
// uncaught exceptions and the browser log (failed loads, CSP violations).
// Answers whose status the test expects (503 under load, a 401 before a
// key is typed) are set aside; every other error is a problem.
type console struct {
	mu                 sync.Mutex
	expected           []string // "status of NNN" texts set aside
	problems, setAside []string
}

func (c *console) check(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.setAside) > 0 {
		t.Logf("the service answered %d requests with an expected error status; the page handled them: %v", len(c.setAside), c.setAside)
	}
	if len(c.problems) > 0 {
		t.Errorf("the browser logged errors:\n%s", strings.Join(c.problems, "\n"))
	}
}

// page is a headless chromium tab, its context bounded as a whole, and
// the test that drives it.
type page struct {
	t       *testing.T
	ctx     context.Context
	console *console
}

// openBrowser starts headless chromium (the flags of the helper guide). It
// skips the test without a chromium on PATH. expected are the console
// texts (e.g. "status of 503") the test expects and checks otherwise.
func openBrowser(t *testing.T, expected ...string) *page {
	t.Helper()
	exe := browser()
	if exe == "" {
		t.Skip("no chromium on PATH: apt-get install -y chromium (.ci/run does) to run the playground's browser test")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 1100))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(cancelBrowser)
	// A bound on the whole session, not a speed assertion: a hung browser
	// must not hold the test run for its full timeout.
	ctx, cancel := context.WithTimeout(bctx, 3*time.Minute)
	t.Cleanup(cancel)

	c := &console{expected: expected}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.Type != chromedp.ConsoleError && !m.IsException() {
				continue
			}
			c.mu.Lock()
			if i := slices.IndexFunc(c.expected, func(s string) bool { return strings.Contains(m.Text, s) }); i >= 0 {
				c.setAside = append(c.setAside, c.expected[i]+" "+m.URL)
			} else {
				c.problems = append(c.problems, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line))
			}
			c.mu.Unlock()
		}
	}()
	return &page{t: t, ctx: ctx, console: c}
}

func (p *page) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, steps...); err != nil {
		p.t.Fatalf("%s: %v", what, err)
	}
}

func (p *page) text(sel string) string {
	p.t.Helper()
	s, err := chromedp.Run(p.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		p.t.Fatalf("read %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

func (p *page) count(sel string) int {
	p.t.Helper()
	n, err := chromedp.Run(p.ctx, chromedp.Evaluate[int](fmt.Sprintf("document.querySelectorAll(%q).length", sel)))
	if err != nil {
		p.t.Fatalf("count %s: %v", sel, err)
	}
	return n
}

func (p *page) number(sel string) float64 {
	p.t.Helper()
	f, err := strconv.ParseFloat(p.text(sel), 64)
	if err != nil {
		p.t.Fatalf("%s: %v", sel, err)
	}
	return f
}

// poll waits until the JavaScript expression is true (a hang guard of a
// minute, not a speed assertion).
func (p *page) poll(what, expr string) {
	p.t.Helper()
	if _, err := chromedp.Run(p.ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(time.Minute))); err != nil {
		p.t.Fatalf("%s: %v", what, err)
	}
}

// TestPlaygroundInBrowser drives the playground page in headless chromium
// against recsvc in embedded mode, with the example experiment and an
// admin token: the page loads and shows a slate and the user's intent; a
// click on a novel item moves the shown propensities (through Kafka, the
// feature updater and Redis); the next slate is explained; the A/B view
// shows the running experiment's report as a table and a chart; and the
// browser logs no error on the way.
func TestPlaygroundInBrowser(t *testing.T) {
	const token = "playground-test-token"
	// 503: the service's answer under load (a store read over its 100 ms
	// budget); the page retries reads, and the checks below see whether it
	// recovered.
	p := openBrowser(t, "status of 503")
	s := start(t, config{
		updater: "on", trainer: "on", sampleItems: 1000, playground: true,
		experiments: filepath.Join("..", "..", "examples", "experiments.yaml"), adminToken: token,
	})

	do, text, count, number, poll := p.do, p.text, p.count, p.number, p.poll
	shot := func(name string) {
		t.Helper()
		if *screenshots == "" {
			return
		}
		png, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(*screenshots, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The page loads, asks for a slate for a new user and shows the intent.
	do("load the page", chromedp.Navigate(s.base+"/?user=pg-browser&session=s1"), chromedp.WaitVisible(chromedp.CSS("#slate li.item")))
	poll("intent shown", `document.getElementById("up").textContent !== "–" && document.querySelector("#whybody dl") !== null`)
	if title, err := chromedp.Run(p.ctx, chromedp.Title()); err != nil || title != "novarec playground" {
		t.Errorf("title %q, %v", title, err)
	}
	if n := count("#slate li.item"); n != 8 {
		t.Fatalf("the slate shows %d items, want the page's default k=8", n)
	}
	first := text("#slate li.item .id")
	upBefore, spBefore := number("#up"), number("#sp")
	if upBefore != 0.25 { // Beta(1, 3) prior mean of a user without clicks
		t.Errorf("new user's propensity %v, want the prior 0.25", upBefore)
	}

	// A click on a novel item shows in the intent once the feature updater
	// has applied it. To a new user every item is novel, so the click says
	// nothing about novelty seeking: both propensities stay at the prior
	// (the mode evidence is measured against the slate's mix), and the
	// user-level one moves only when a session closes.
	do("click a novel item", chromedp.Click(chromedp.CSS("#slate li.item.novel button.click")))
	poll("intent after the click", `document.getElementById("intentmeta").textContent.startsWith("1 clicks (1 novel)")`)
	if up, sp := number("#up"), number("#sp"); up != upBefore || sp != spBefore {
		t.Errorf("a new user's click on an all-novel slate moved the propensities: user %v → %v, session %v → %v", upBefore, up, spBefore, sp)
	}

	// The next slate excludes the clicked item and is explained.
	do("next slate", chromedp.Click(chromedp.CSS("#next")))
	poll("next slate", fmt.Sprintf(`document.querySelector("#slate li.item .id").textContent !== %q && document.querySelectorAll("#trace circle").length === 2`, first))
	why := text("#whybody")
	for _, want := range []string{"target novelty", "novelty weight β", "candidate pools", "novel to this user"} {
		if !strings.Contains(why, want) {
			t.Errorf("why this slate lacks %q: %s", want, why)
		}
	}
	if n := count("#dist rect"); n != 5 {
		t.Errorf("level distribution has %d bars, want K=5", n)
	}
	shot("playground.png")

	// The A/B view reads the admin routes with the key typed on the page.
	do("A/B report",
		chromedp.SendKeys(chromedp.CSS("#key"), token),
		chromedp.Click(chromedp.CSS("#tab-ab")),
		chromedp.WaitVisible(chromedp.CSS("#ab-table tbody tr")))
	if points, rows := count("#ab-chart circle"), count("#ab-table tbody tr"); points != 2 || rows < 2*5 {
		t.Errorf("A/B view: %d points in the chart (want one per variant, 2) and %d table rows", points, rows)
	}
	if title := text("#ab-title"); !strings.Contains(title, "novelty-weights") {
		t.Errorf("A/B view title %q", title)
	}
	if *screenshots != "" {
		// For the picture: some traffic, and a report that counts it.
		do("traffic", chromedp.Click(chromedp.CSS("#ab-traffic")))
		poll("traffic sent", `!document.getElementById("ab-traffic").disabled`)
		poll("report with users", `(document.getElementById("ab-refresh").click(), true) &&
			[...document.querySelectorAll('#ab-table tr[data-metric="users"] td:nth-child(3)')].every(td => Number(td.textContent) > 0)`)
		shot("playground-ab.png")
	}

	p.console.check(t)
}

// TestPlaygroundWithKeys drives the playground against recsvc with an API
// keys file: without a key the page says that it needs one (401), and once
// a key of the page's scopes is typed into its API key field it shows a
// slate, the user's intent and why this slate (recommend, feedback,
// intent:read; GET /v1/policy is in recommend). The key has no catalog
// scope: the page shows no categories and asks for them once (one 403).
func TestPlaygroundWithKeys(t *testing.T) {
	p := openBrowser(t, "status of 401", "status of 403", "status of 503")
	secret, key := apikey.Generate("playground", apikey.Recommend, apikey.Feedback, apikey.IntentRead)
	path := filepath.Join(t.TempDir(), "keys")
	writeKeys(t, path, key)
	s := start(t, config{updater: "off", trainer: "off", sampleItems: 300, playground: true, apiKeys: path})

	p.do("load the page without a key", chromedp.Navigate(s.base+"/?user=pg-keys&session=s1"), chromedp.WaitVisible(chromedp.CSS("#error")))
	if msg := p.text("#error"); !strings.Contains(msg, "401") || !strings.Contains(msg, "API key") {
		t.Errorf("without a key the page says %q, want a 401 and what key to type", msg)
	}
	if n := p.count("#slate li.item"); n != 0 {
		t.Errorf("without a key the page shows %d items", n)
	}
	p.do("type the key and ask again", chromedp.SendKeys(chromedp.CSS("#key"), secret), chromedp.Click(chromedp.CSS("#next")))
	p.poll("a slate, its intent and why", `document.querySelectorAll("#slate li.item").length === 8 &&
		document.getElementById("error").hidden && document.querySelector("#whybody dl") !== null &&
		document.getElementById("up").textContent !== "–"`)
	if cats := p.text("#slate li.item .cats"); cats != "…" {
		t.Errorf("categories %q shown with a key without the catalog scope", cats)
	}
	p.console.mu.Lock()
	refused := slices.DeleteFunc(slices.Clone(p.console.setAside), func(s string) bool { return strings.Contains(s, "503") })
	p.console.mu.Unlock()
	if len(refused) != 2 {
		t.Errorf("refused requests %v, want the first slate's 401 and one 403 of an item read", refused)
	}
	p.console.check(t)
}

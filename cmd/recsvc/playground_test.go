package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
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

// TestPlaygroundInBrowser drives the playground page in headless chromium
// against recsvc in embedded mode, with the example experiment and an
// admin token: the page loads and shows a slate and the user's intent; a
// click on a novel item moves the shown propensities (through Kafka, the
// feature updater and Redis); the next slate is explained; the A/B view
// shows the running experiment's report as a table and a chart; and the
// browser logs no error on the way.
func TestPlaygroundInBrowser(t *testing.T) {
	exe := browser()
	if exe == "" {
		t.Skip("no chromium on PATH: apt-get install -y chromium (.ci/run does) to run the playground's browser test")
	}
	const token = "playground-test-token"
	s := start(t, config{
		updater: "on", trainer: "on", sampleItems: 1000, playground: true,
		experiments: filepath.Join("..", "..", "examples", "experiments.yaml"), adminToken: token,
	})

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 1100))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	// A bound on the whole session, not a speed assertion: a hung browser
	// must not hold the test run for its full timeout.
	ctx, cancel := context.WithTimeout(bctx, 3*time.Minute)
	defer cancel()

	// The browser's console: calls of the console API, uncaught
	// exceptions and the browser log (failed loads, CSP violations).
	var mu sync.Mutex
	var problems, unavailable []string
	console := chromedp.Console(ctx)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			if m.Type != chromedp.ConsoleError && !m.IsException() {
				continue
			}
			mu.Lock()
			if strings.Contains(m.Text, "status of 503") {
				// The service's answer under load (a store read over its
				// 100 ms budget): the page retries reads, and the
				// checks below see whether it recovered.
				unavailable = append(unavailable, m.URL)
			} else {
				problems = append(problems, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line))
			}
			mu.Unlock()
		}
	}()

	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return strings.TrimSpace(s)
	}
	count := func(sel string) int {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf("document.querySelectorAll(%q).length", sel)))
		if err != nil {
			t.Fatalf("count %s: %v", sel, err)
		}
		return n
	}
	number := func(sel string) float64 {
		t.Helper()
		f, err := strconv.ParseFloat(text(sel), 64)
		if err != nil {
			t.Fatalf("%s: %v", sel, err)
		}
		return f
	}
	poll := func(what, expr string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(time.Minute))); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	shot := func(name string) {
		t.Helper()
		if *screenshots == "" {
			return
		}
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
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
	if title, err := chromedp.Run(ctx, chromedp.Title()); err != nil || title != "novarec playground" {
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

	// A click on a novel item changes the shown intent once the feature
	// updater has applied it: the user-level propensity is the posterior
	// (1+1)/(1+3+1) = 0.4 and the session leans towards exploring.
	do("click a novel item", chromedp.Click(chromedp.CSS("#slate li.item.novel button.click")))
	poll("intent after the click", fmt.Sprintf(`document.getElementById("up").textContent !== %q`, fmt.Sprintf("%.3f", upBefore)))
	if up := number("#up"); up != 0.4 {
		t.Errorf("user propensity after one novel click %v, want 0.4", up)
	}
	if sp := number("#sp"); !(sp > spBefore) {
		t.Errorf("session propensity %v after a novel click, was %v", sp, spBefore)
	}
	if n := text("#intentmeta"); !strings.HasPrefix(n, "1 clicks (1 novel)") {
		t.Errorf("intent counters %q", n)
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

	mu.Lock()
	defer mu.Unlock()
	if len(unavailable) > 0 {
		t.Logf("the service answered 503 to %d reads (load); the page retried: %v", len(unavailable), unavailable)
	}
	if len(problems) > 0 {
		t.Errorf("the browser logged errors:\n%s", strings.Join(problems, "\n"))
	}
}

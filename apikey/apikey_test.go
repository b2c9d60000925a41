package apikey

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/time/rate"

	"github.com/novarec/novarec/internal/logtest"
)

func TestParse(t *testing.T) {
	secret, k := Generate("frontend-1", Recommend, Feedback)
	if !strings.HasPrefix(secret, "frontend-1.") || len(secret) != len("frontend-1.")+64 {
		t.Fatalf("generated key %q", secret)
	}
	keys, err := Parse([]byte("# comment\n\n" + k.Line() + "  # trailing comment\nops admin,intent:read,admin " + strings.Replace(k.Line(), "frontend-1 recommend,feedback ", "", 1)[:0] + "sha256:" + strings.Repeat("ab", 32) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].ID != "frontend-1" || keys[0].Hash != k.Hash || !keys[0].Has(Feedback) || keys[0].Has(Catalog) {
		t.Fatalf("parsed %+v", keys)
	}
	if got := keys[1].Scopes; len(got) != 2 || got[0] != Admin || got[1] != IntentRead {
		t.Fatalf("scopes %v, want [admin intent:read] (duplicates dropped)", got)
	}

	hash := "sha256:" + strings.Repeat("0f", 32)
	for _, tc := range []struct{ name, file, want string }{
		{"two fields", "a recommend\n", "line 1: want 3 fields"},
		{"bad id", "-a recommend " + hash, "line 1: id"},
		{"reserved id", "anonymous recommend " + hash, "line 1: id"},
		{"unknown scope", "a recomend " + hash, `unknown scope "recomend"`},
		{"key in the scopes field", "a " + secret + " " + hash, "the second field must be scopes"},
		{"key in the hash field", "a recommend " + secret, "the third field must be sha256:"},
		{"hash without prefix", "a recommend " + strings.Repeat("0f", 32), "the third field"},
		{"short hash", "a recommend sha256:0f0f", "the third field"},
		{"long hash", "a recommend " + hash + "00", "the third field"},
		{"not hex", "a recommend sha256:" + strings.Repeat("zz", 32), "the third field"},
		{"duplicate id", "a recommend " + hash + "\na feedback sha256:" + strings.Repeat("1f", 32), "line 2: id a is also on line 1"},
		{"duplicate hash", "a recommend " + hash + "\nb feedback " + hash, "line 2: the same key hash"},
	} {
		_, err := Parse([]byte(tc.file))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the error echoes the key: %v", tc.name, err)
		}
	}
}

// fixture is a keyring on a keys file, with its log and metrics.
type fixture struct {
	path string
	keys *Keyring
	log  *logtest.Buffer
	reg  *prometheus.Registry
	now  time.Time
	mu   sync.Mutex
}

func newFixture(t *testing.T, opts Options, file ...Key) *fixture {
	t.Helper()
	f := &fixture{path: filepath.Join(t.TempDir(), "keys"), reg: prometheus.NewRegistry(), now: time.Unix(1_800_000_000, 0)}
	f.write(t, file...)
	f.log, opts.Logger = logtest.New()
	opts.Path, opts.Registerer = f.path, f.reg
	if opts.Now == nil {
		opts.Now = f.clock
	}
	k, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Reload("start"); err != nil {
		t.Fatal(err)
	}
	f.keys = k
	return f
}

func (f *fixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fixture) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

// write replaces the keys file the way Kubernetes updates a mounted Secret:
// a new file renamed over the old one.
func (f *fixture) write(t *testing.T, keys ...Key) {
	t.Helper()
	var b strings.Builder
	b.WriteString("# test keys\n")
	for _, k := range keys {
		b.WriteString(k.Line() + "\n")
	}
	tmp := f.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, f.path); err != nil {
		t.Fatal(err)
	}
}

// authorize returns the status of a request of scope with key (200 = admitted).
func (f *fixture) authorize(key string, scope Scope) int {
	r := httptest.NewRequest("GET", "/", nil)
	if key != "" {
		r.Header.Set("Authorization", "Bearer "+key)
	}
	if _, err := f.keys.Authorize(r, scope); err != nil {
		var d *Denied
		if !errors.As(err, &d) {
			return 500
		}
		return d.Status
	}
	return 200
}

// TestRotationByReload rotates a key the documented way (add the new one,
// move the client, remove the old one), and revokes one, without a new
// Keyring; a broken file leaves the keys in force alone.
func TestRotationByReload(t *testing.T) {
	old, kOld := Generate("frontend-1", Recommend)
	next, kNext := Generate("frontend-2", Recommend)
	ops, kOps := Generate("ops", Admin)
	f := newFixture(t, Options{}, kOld, kOps)
	check := func(step string, want map[string]int) {
		t.Helper()
		for key, code := range want {
			if got := f.authorize(key, Recommend); got != code {
				t.Errorf("%s: key %s: %d, want %d", step, key[:10], got, code)
			}
		}
	}
	check("start", map[string]int{old: 200, next: 401, ops: 403})

	f.write(t, kOld, kNext, kOps)
	if err := f.keys.Reload("test"); err != nil {
		t.Fatal(err)
	}
	check("both keys", map[string]int{old: 200, next: 200})

	f.write(t, kNext, kOps)
	if err := f.keys.Reload("test"); err != nil {
		t.Fatal(err)
	}
	check("old key revoked", map[string]int{old: 401, next: 200})

	// A broken file is refused and the keys in force stay.
	if err := os.WriteFile(f.path, []byte("frontend-3 recommend "+old+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.keys.Reload("test"); err == nil {
		t.Fatal("a key where its hash belongs was accepted")
	}
	check("after a broken file", map[string]int{old: 401, next: 200})
	if err := os.Remove(f.path); err != nil {
		t.Fatal(err)
	}
	if err := f.keys.Reload("test"); err == nil {
		t.Fatal("a missing file was accepted")
	}
	check("after a missing file", map[string]int{next: 200})
	if got := testutil.ToFloat64(f.keys.metrics.lastOK); got != 0 {
		t.Errorf("novarec_auth_last_reload_successful %v after a failed reload", got)
	}

	if got := testutil.ToFloat64(f.keys.metrics.keys); got != 2 {
		t.Errorf("novarec_auth_keys %v, want 2", got)
	}
	if ok, bad := testutil.ToFloat64(f.keys.metrics.reloads.WithLabelValues("ok")), testutil.ToFloat64(f.keys.metrics.reloads.WithLabelValues("error")); ok != 3 || bad != 2 {
		t.Errorf("reloads ok %v error %v, want 3 and 2", ok, bad)
	}
	logs := f.log.String()
	for _, want := range []string{`"added":["frontend-2"]`, `"removed":["frontend-1"]`, `"outcome":"error"`, `"action":"keys.reload"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("the reload audit lines lack %s:\n%s", want, logs)
		}
	}
	for _, secret := range []string{old, next, ops} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds a key:\n%s", logs)
		}
	}
}

// TestRunReloadsOnChangeAndSIGHUP runs the reload loop: a changed file is
// picked up by polling, and with polling out of the way, by SIGHUP.
func TestRunReloadsOnChangeAndSIGHUP(t *testing.T) {
	a, ka := Generate("a", Feedback)
	b, kb := Generate("b", Feedback)
	c, kc := Generate("c", Feedback)
	for _, tc := range []struct {
		name string
		poll time.Duration
		hup  bool
	}{
		{"poll", 10 * time.Millisecond, false},
		{"sighup", time.Hour, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Options{}, ka)
			hup := make(chan os.Signal, 1)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); f.keys.Run(ctx, tc.poll, hup) }()
			stop := sync.OnceFunc(func() { cancel(); <-done })
			defer stop()

			for _, step := range []struct {
				keys []Key
				in   string
				out  string
			}{{[]Key{ka, kb}, b, ""}, {[]Key{kc}, c, a}} {
				f.write(t, step.keys...)
				if tc.hup {
					hup <- syscall.SIGHUP
				}
				deadline := time.Now().Add(10 * time.Second)
				for f.authorize(step.in, Feedback) != 200 || (step.out != "" && f.authorize(step.out, Feedback) != 401) {
					if time.Now().After(deadline) {
						t.Fatalf("the new keys were not in force after 10s")
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
			stop() // the last reload has logged its audit line
			if n := strings.Count(f.log.String(), `"action":"keys.reload"`); n != 3 {
				t.Errorf("%d reload audit lines, want 3 (start and two changes; an unchanged file is not reloaded):\n%s", n, f.log)
			}
		})
	}
}

// TestLimiterHoldsRate offers a key ten times its rate for 20 simulated
// seconds, in bursts, on a fake clock: it is admitted at its rate plus one
// burst, and a key with another bucket is not affected.
func TestLimiterHoldsRate(t *testing.T) {
	hot, kHot := Generate("hot", Recommend, Feedback)
	calm, kCalm := Generate("calm", Recommend)
	f := newFixture(t, Options{Limits: Limits{Recommend: {50, 20}, Feedback: {Rate: rate.Inf}}}, kHot, kCalm)
	const (
		seconds  = 20
		perTick  = 25 // requests at once, every 50ms: 500/s offered
		tick     = 50 * time.Millisecond
		rateWant = 50
		burst    = 20
	)
	admitted, limited := 0, 0
	for i := 0; i < seconds*int(time.Second/tick); i++ {
		for j := 0; j < perTick; j++ {
			switch f.authorize(hot, Recommend) {
			case 200:
				admitted++
			case 429:
				limited++
			default:
				t.Fatal("neither admitted nor rate limited")
			}
		}
		if code := f.authorize(calm, Recommend); code != 200 {
			t.Fatalf("the calm key was refused (%d) while another key was over its rate", code)
		}
		if code := f.authorize(hot, Feedback); code != 200 {
			t.Fatalf("the hot key's unlimited scope was refused (%d)", code)
		}
		f.advance(tick)
	}
	// Ideal: the burst, then one token per 20ms of the 19.95s after it.
	ideal := burst + rateWant*(seconds-tick.Seconds())
	if lo, hi := ideal*0.98, ideal*1.02; float64(admitted) < lo || float64(admitted) > hi {
		t.Errorf("admitted %d of %d in %ds at %d/s with burst %d; want within 2%% of %.0f", admitted, admitted+limited, seconds, rateWant, burst, ideal)
	}
	if got := testutil.ToFloat64(f.keys.metrics.requests.WithLabelValues("hot", "recommend", "rate_limited")); int(got) != limited {
		t.Errorf("novarec_auth_requests_total{key_id=hot,outcome=rate_limited} %v, want %d", got, limited)
	}
	if got := testutil.ToFloat64(f.keys.metrics.requests.WithLabelValues("hot", "recommend", "allowed")); int(got) != admitted {
		t.Errorf("novarec_auth_requests_total{key_id=hot,outcome=allowed} %v, want %d", got, admitted)
	}
}

// TestLimiterConcurrentBurst fires a bounded burst from several goroutines
// at one instant (a frozen clock, so nothing refills): exactly the bucket's
// burst is admitted and every other request is refused, whatever the
// interleaving.
func TestLimiterConcurrentBurst(t *testing.T) {
	key, k := Generate("burst", Recommend)
	now := time.Unix(1_800_000_000, 0)
	f := newFixture(t, Options{Limits: Limits{Recommend: {100, 50}}, Now: func() time.Time { return now }}, k)
	const workers, each = 8, 250
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[int]int{}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				code := f.authorize(key, Recommend)
				mu.Lock()
				counts[code]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if counts[200] != 50 || counts[429] != workers*each-50 {
		t.Errorf("answers %v; want 50 admitted (the burst) and %d refused", counts, workers*each-50)
	}
}

// TestOpenMode admits requests without a key to every scope but admin, and
// admin only with a key of that scope.
func TestOpenMode(t *testing.T) {
	admin, ka := Generate("ops", Admin)
	for _, tc := range []struct {
		name  string
		extra []Key
		admin map[string]int
	}{
		{"no admin key", nil, map[string]int{"": 403, admin: 403}},
		{"admin key", []Key{ka}, map[string]int{"": 401, admin: 200, "ops.wrong": 401}},
	} {
		k, err := New(Options{Open: true, Extra: tc.extra})
		if err != nil {
			t.Fatal(err)
		}
		f := &fixture{keys: k}
		for _, sc := range []Scope{Recommend, Feedback, Catalog, IntentRead} {
			if code := f.authorize("", sc); code != 200 {
				t.Errorf("%s: %s without a key: %d", tc.name, sc, code)
			}
		}
		for key, want := range tc.admin {
			if code := f.authorize(key, Admin); code != want {
				t.Errorf("%s: admin with key %q: %d, want %d", tc.name, key, code, want)
			}
		}
	}
	if _, err := New(Options{Extra: []Key{NewKey("a", "x", Admin), NewKey("a", "y", Admin)}}); err == nil {
		t.Error("two extra keys with one id accepted")
	}
	if _, err := New(Options{Extra: []Key{NewKey("bad id", "x", Admin)}}); err == nil {
		t.Error("an extra key with a bad id accepted")
	}
}

func TestExtraKeyCollidesWithFile(t *testing.T) {
	_, k := Generate("admin-token", Recommend)
	f := &fixture{path: filepath.Join(t.TempDir(), "keys")}
	f.write(t, k)
	keys, err := New(Options{Path: f.path, Extra: []Key{NewKey("admin-token", "t", Admin)}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.Reload("start"); err == nil || !strings.Contains(err.Error(), "admin-token") {
		t.Fatalf("a file key with the id of an extra key: %v", err)
	}
}

func TestParseLimits(t *testing.T) {
	l, err := ParseLimits(" recommend=off, catalog=2.5, admin=1:3")
	if err != nil {
		t.Fatal(err)
	}
	if l[Recommend].Rate != rate.Inf || l[Catalog] != (Limit{2.5, 3}) || l[Admin] != (Limit{1, 3}) || l[Feedback] != DefaultLimits()[Feedback] {
		t.Fatalf("limits %v", l)
	}
	if got := l.String(); got != "recommend=off,feedback=1000:2000,catalog=2.5:3,intent:read=100:200,admin=1:3" {
		t.Errorf("String() = %s", got)
	}
	for _, bad := range []string{"recomend=1", "catalog", "catalog=0", "catalog=-1", "catalog=x", "catalog=1:0", "catalog=1:x", "catalog=Inf", "catalog=NaN"} {
		if _, err := ParseLimits(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// BenchmarkAuthorize is the cost a key check adds to each request: a
// SHA-256 of the key, a constant-time pass over the keys, a bucket.
func BenchmarkAuthorize(b *testing.B) {
	var keys []Key
	var key string
	for i := 0; i < 20; i++ {
		s, k := Generate("client-"+string(rune('a'+i)), Recommend, Feedback)
		keys, key = append(keys, k), s
	}
	k, err := New(Options{Extra: keys, Limits: Limits{Recommend: {rate.Limit(1e9), 1e9}}})
	if err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "/v1/recommend", nil)
	r.Header.Set("Authorization", "Bearer "+key)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Authorize(r, Recommend); err != nil {
			b.Fatal(err)
		}
	}
}

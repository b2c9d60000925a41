package docs

import (
	"bufio"
	"context"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// root is the repository's root, seen from this package.
const root = ".."

// MaxReadmeBytes keeps the README a front page: what and why, the quick
// start, a tour and links; the rest lives in docs/.
const MaxReadmeBytes = 12 * 1024

// files are the documents checked: README.md and docs/*.md.
func files(t *testing.T) []string {
	t.Helper()
	md, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	if len(md) == 0 {
		t.Fatal("no docs/*.md")
	}
	return append([]string{filepath.Join(root, "README.md")}, md...)
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestReadmeSize(t *testing.T) {
	if n := len(read(t, filepath.Join(root, "README.md"))); n > MaxReadmeBytes {
		t.Errorf("README.md is %d bytes, more than %d: move detail into docs/", n, MaxReadmeBytes)
	}
}

// TestNoConflictMarkers keeps a merge's leftovers out of the docs: a
// conflict resolved by committing both sides with their markers once stayed
// unnoticed in evaluation-history.md.
func TestNoConflictMarkers(t *testing.T) {
	for _, f := range files(t) {
		for i, line := range strings.Split(read(t, f), "\n") {
			for _, marker := range []string{"<<<<<<< ", ">>>>>>> "} {
				if strings.HasPrefix(line, marker) || line == strings.TrimSpace(marker) {
					t.Errorf("%s:%d: merge conflict marker %q", f, i+1, line)
				}
			}
		}
	}
}

// block is one fenced code block.
type block struct {
	file, lang string
	run        bool
	line       int
	text       string
}

// prose returns the document without its fenced blocks (links in code are
// not links), and the blocks.
func parse(path, doc string) (prose string, blocks []block) {
	var b strings.Builder
	var cur *block
	var body strings.Builder
	for i, line := range strings.Split(doc, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "```") {
			if cur == nil {
				info := strings.Fields(strings.TrimPrefix(trimmed, "```"))
				cur = &block{file: path, line: i + 1}
				if len(info) > 0 {
					cur.lang = info[0]
					cur.run = slices.Contains(info[1:], "run")
				}
				body.Reset()
				continue
			}
			cur.text = body.String()
			blocks = append(blocks, *cur)
			cur = nil
			continue
		}
		if cur != nil {
			body.WriteString(line + "\n")
			continue
		}
		b.WriteString(line + "\n")
	}
	return b.String(), blocks
}

var (
	linkRE    = regexp.MustCompile(`!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	codeSpan  = regexp.MustCompile("`[^`]*`")
	headingRE = regexp.MustCompile(`(?m)^#{1,6}\s+(.+?)\s*#*$`)
	envRE     = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*=`)
)

// slug is GitHub's anchor of a heading: lower case, punctuation dropped,
// spaces to hyphens.
func slug(h string) string {
	h = strings.ToLower(codeSpan.ReplaceAllStringFunc(h, func(s string) string { return strings.Trim(s, "`") }))
	var b strings.Builder
	for _, r := range h {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127 && r != '—' && r != '–' && r != '·':
			b.WriteRune(r)
		}
	}
	return b.String()
}

func anchors(doc string) map[string]bool {
	prose, _ := parse("", doc)
	out := map[string]bool{}
	for _, m := range headingRE.FindAllStringSubmatch(prose, -1) {
		s := slug(m[1])
		for i := 0; out[s]; i++ { // GitHub numbers repeated headings
			s = fmt.Sprintf("%s-%d", slug(m[1]), i+1)
		}
		out[s] = true
	}
	return out
}

// TestLinks checks that every relative link and image of the docs points
// at a file inside the repository (a clone has nothing beside it), and
// every #anchor at a heading.
func TestLinks(t *testing.T) {
	absRoot, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files(t) {
		doc := read(t, f)
		prose, _ := parse(f, doc)
		prose = codeSpan.ReplaceAllString(prose, "")
		for _, m := range linkRE.FindAllStringSubmatch(prose, -1) {
			target := m[1]
			u, err := url.Parse(target)
			if err != nil {
				t.Errorf("%s: link %q: %v", f, target, err)
				continue
			}
			if u.Scheme != "" || u.Host != "" {
				continue // external: not checked offline
			}
			path := f
			if u.Path != "" {
				path = filepath.Join(filepath.Dir(f), u.Path)
				abs, err := filepath.Abs(path)
				if err != nil {
					t.Fatal(err)
				}
				if rel, err := filepath.Rel(absRoot, abs); err != nil || strings.HasPrefix(rel, "..") {
					t.Errorf("%s: link %q leaves the repository", f, target)
					continue
				}
				if _, err := os.Stat(path); err != nil {
					t.Errorf("%s: link %q: %v", f, target, err)
					continue
				}
			}
			if u.Fragment != "" && strings.HasSuffix(path, ".md") {
				if !anchors(read(t, path))[u.Fragment] {
					t.Errorf("%s: link %q: no heading with anchor #%s in %s", f, target, u.Fragment, path)
				}
			}
		}
	}
}

// command is one shell command of a block: environment assignments, then
// the words.
type command struct {
	where string
	env   []string
	args  []string
	line  string
}

// commands splits a block into commands: continuation lines joined,
// comments dropped, words split as the shell would (quotes, no expansion).
func commands(b block) []command {
	var out []command
	var pending string
	sc := bufio.NewScanner(strings.NewReader(b.text))
	n := b.line
	for sc.Scan() {
		n++
		line := pending + sc.Text()
		if strings.HasSuffix(line, "\\") {
			pending = strings.TrimSuffix(line, "\\") + " "
			continue
		}
		pending = ""
		words := split(line)
		if len(words) == 0 {
			continue
		}
		c := command{where: fmt.Sprintf("%s:%d", b.file, n), line: strings.TrimSpace(line)}
		for len(words) > 0 && envRE.MatchString(words[0]) {
			c.env, words = append(c.env, words[0]), words[1:]
		}
		c.args = words
		if len(c.args) > 0 {
			out = append(out, c)
		}
	}
	return out
}

// split breaks a shell line into words: single and double quotes group,
// an unquoted # starts a comment.
func split(line string) []string {
	var words []string
	var w strings.Builder
	inWord := false
	var quote rune
	for _, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				w.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == '#' && !inWord:
			return words
		case r == ' ' || r == '\t':
			if inWord {
				words, inWord = append(words, w.String()), false
				w.Reset()
			}
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}

// binaries builds each `go run` package once.
type binaries struct {
	dir string
	mu  sync.Mutex
	got map[string]string
}

func (b *binaries) get(pkg string) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p, ok := b.got[pkg]; ok {
		return p, nil
	}
	out := filepath.Join(b.dir, strings.NewReplacer("/", "_", ".", "_").Replace(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = root
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, msg)
	}
	b.got[pkg] = out
	return out, nil
}

func blocks(t *testing.T) []block {
	var all []block
	for _, f := range files(t) {
		_, bs := parse(f, read(t, f))
		for _, b := range bs {
			if b.lang == "sh" || b.lang == "bash" || b.lang == "console" {
				rel, _ := filepath.Rel(root, b.file)
				b.file = rel
				all = append(all, b)
			}
		}
	}
	return all
}

// newChecker returns what check needs; building the commands is too slow
// for -short.
func newChecker(t *testing.T) (*binaries, routers.Router) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the commands: not in -short")
	}
	return &binaries{dir: t.TempDir(), got: map[string]string{}}, contractRouter(t)
}

// TestCommands checks every command of the docs' sh blocks (see the
// package comment for what is checked for which command).
func TestCommands(t *testing.T) {
	bins, router := newChecker(t)
	checked := 0
	for _, b := range blocks(t) {
		for _, c := range commands(b) {
			checked++
			if err := check(t.Context(), bins, router, c); err != nil {
				t.Errorf("%s: %s\n%v", c.where, c.line, err)
			}
			if keyless(router, c) && !saysHowToSendKeys(t, b.file) {
				t.Errorf("%s: %s\ncalls a route that needs an API key without one, and %s does not link security.md, which says how to send one", c.where, c.line, b.file)
			}
		}
	}
	if checked < 20 {
		t.Errorf("only %d commands in the docs' sh blocks: is the convention still used?", checked)
	}
}

// saysHowToSendKeys reports whether a document (relative to the root) is
// security.md or links it.
func saysHowToSendKeys(t *testing.T, file string) bool {
	return filepath.Base(file) == "security.md" || strings.Contains(read(t, filepath.Join(root, file)), "security.md)")
}

// TestRunBlocks runs the `sh run` blocks as written.
func TestRunBlocks(t *testing.T) {
	if testing.Short() {
		t.Skip("runs commands: not in -short")
	}
	ran := 0
	for _, b := range blocks(t) {
		if !b.run {
			continue
		}
		for _, c := range commands(b) {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
			cmd := exec.CommandContext(ctx, "bash", "-c", c.line)
			cmd.Dir = root
			out, err := cmd.CombinedOutput()
			cancel()
			if err != nil {
				t.Errorf("%s: %s\n%v\n%s", c.where, c.line, err, tail(out))
			}
			ran++
		}
	}
	if ran == 0 {
		t.Error("no `sh run` block in the docs")
	}
}

func tail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

func check(ctx context.Context, bins *binaries, router routers.Router, c command) error {
	args := c.args
	switch {
	case args[0] == "go" && len(args) > 2 && (args[1] == "run" || args[1] == "build"):
		var flags []string
		i := 2
		for ; i < len(args) && strings.HasPrefix(args[i], "-"); i++ {
			flags = append(flags, args[i]) // go's own flags (-race, -o x): not used here
		}
		if i == len(args) {
			return fmt.Errorf("no package")
		}
		bin, err := bins.get(args[i])
		if err != nil || args[1] == "build" {
			return err
		}
		return runHelp(ctx, c.env, bin, args[i+1:])
	case args[0] == "go" && len(args) > 1 && args[1] == "test":
		return checkGoTest(ctx, args[2:])
	case args[0] == "bash" && len(args) > 1:
		if _, err := os.Stat(filepath.Join(root, args[1])); err != nil {
			return err
		}
		return execIn(ctx, nil, "bash", "-n", args[1])
	case args[0] == "curl":
		return checkCurl(router, args[1:])
	}
	return nil // other tools are not checked
}

// runHelp runs a built command with its documented arguments and -h: the
// flag package exits 0 only if every flag before -h exists and parses.
func runHelp(ctx context.Context, env []string, bin string, args []string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(slices.Clone(args), "-h")...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v\n%s", err, tail(out))
	}
	if !strings.Contains(string(out), "Usage") && !strings.Contains(string(out), "-h") {
		return fmt.Errorf("no usage printed: was -h reached?\n%s", tail(out))
	}
	return nil
}

func execIn(ctx context.Context, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, tail(out))
	}
	return nil
}

// checkGoTest checks that a go test command's packages exist and that its
// -run, -bench and -fuzz patterns match something in them.
func checkGoTest(ctx context.Context, args []string) error {
	var pkgs, patterns []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-run" || a == "-bench" || a == "-fuzz":
			if i+1 < len(args) && args[i+1] != "-" && args[i+1] != "^$" && args[i+1] != "." {
				patterns = append(patterns, args[i+1])
			}
			i++
		case slices.Contains([]string{"-benchtime", "-cpu", "-count", "-timeout", "-fuzztime", "-screenshots", "-p"}, a):
			i++
		case strings.HasPrefix(a, "-"):
		case strings.HasPrefix(a, "./"):
			pkgs = append(pkgs, a)
		}
	}
	if len(pkgs) == 0 {
		return fmt.Errorf("no package")
	}
	for _, p := range pkgs {
		if err := execIn(ctx, nil, "go", "list", p); err != nil {
			return err
		}
		if strings.HasSuffix(p, "/...") {
			continue
		}
		names, err := testNames(filepath.Join(root, p))
		if err != nil {
			return err
		}
		for _, pat := range patterns {
			// go test matches the first element of a slash-separated
			// pattern against top-level names.
			re, err := regexp.Compile(strings.Split(pat, "/")[0])
			if err != nil {
				return fmt.Errorf("pattern %q: %v", pat, err)
			}
			if !slices.ContainsFunc(names, re.MatchString) {
				return fmt.Errorf("pattern %q matches no test, benchmark or fuzz target in %s", pat, p)
			}
		}
	}
	return nil
}

var testFuncRE = regexp.MustCompile(`(?m)^func ((?:Test|Benchmark|Fuzz)\w*)\(`)

// testNames lists the tests, benchmarks and fuzz targets of a package
// directory by reading its _test.go files (cheaper than compiling them
// for go test -list).
func testNames(dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	if err != nil {
		return nil, err
	}
	var names []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for _, m := range testFuncRE.FindAllStringSubmatch(string(b), -1) {
			names = append(names, m[1])
		}
	}
	return names, nil
}

func contractRouter(t *testing.T) routers.Router {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(filepath.Join(root, "api", "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	doc.Servers = nil // match by path alone
	r, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// curl is what a curl command asks for.
type curl struct {
	req *http.Request
	// data: the command sends a body; json: declared as JSON (or --json).
	data, json bool
}

// parseCurl reads the method, URL, headers and body flags of a curl command.
func parseCurl(args []string) (curl, error) {
	method, target := "", ""
	var c curl
	header := http.Header{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-X" && i+1 < len(args):
			method = args[i+1]
			i++
		case strings.HasPrefix(a, "-X"):
			method = a[2:]
		case a == "-H" && i+1 < len(args):
			if name, value, ok := strings.Cut(args[i+1], ":"); ok {
				header.Add(strings.TrimSpace(name), strings.TrimSpace(value))
			}
			i++
		case a == "--json":
			c.data, c.json = true, true
			i++
		case a == "-d" || strings.HasPrefix(a, "--data"):
			c.data = true
			i++
		case strings.HasPrefix(a, "-"):
		case target == "":
			target = a
		}
	}
	if mt, _, err := mime.ParseMediaType(header.Get("Content-Type")); err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json")) {
		c.json = true
	}
	if method == "" {
		method = http.MethodGet
		if c.data {
			method = http.MethodPost
		}
	}
	if !strings.Contains(target, "://") {
		target = "http://" + target
	}
	req, err := http.NewRequest(method, target, nil)
	if err != nil {
		return c, err
	}
	req.Header = header
	c.req = req
	return c, nil
}

// checkCurl checks that a curl command calls a documented route, and
// declares a body it sends as JSON.
func checkCurl(router routers.Router, args []string) error {
	c, err := parseCurl(args)
	if err != nil {
		return err
	}
	if _, _, err := router.FindRoute(c.req); err != nil {
		return fmt.Errorf("%s %s is not a route of api/openapi.yaml: %v", c.req.Method, c.req.URL.Path, err)
	}
	if c.data && !c.json {
		return fmt.Errorf("sends a body without -H 'Content-Type: application/json' (the server answers 415)")
	}
	return nil
}

// keyless reports whether c is a curl of a route that needs an API key
// (its operation has security requirements) that sends none.
func keyless(router routers.Router, c command) bool {
	if c.args[0] != "curl" {
		return false
	}
	cu, err := parseCurl(c.args[1:])
	if err != nil {
		return false // reported by check
	}
	route, _, err := router.FindRoute(cu.req)
	if err != nil || route.Operation.Security == nil || len(*route.Operation.Security) == 0 {
		return false
	}
	return cu.req.Header.Get("Authorization") == "" && cu.req.Header.Get("X-API-Key") == ""
}

// TestCheckerCatchesMistakes makes sure the command checks have teeth.
func TestCheckerCatchesMistakes(t *testing.T) {
	bins, router := newChecker(t)
	for _, tc := range []struct {
		line string
		ok   bool
	}{
		{"go run ./cmd/trainer replay -limit 10 -policies hrl", true},
		{"go run ./cmd/trainer replay -no-such-flag 1", false},
		{"go run ./cmd/trainer replay -limit ten", false},
		{"REDIS_ADDR=127.0.0.1:1 go run ./cmd/recsvc -max-inflight 3", true},
		{"go run ./cmd/nothing-here", false},
		{"go test -run Contract ./api", true},
		{"go test -run NoSuchTestAnywhere ./api", false},
		{"go test -bench Decide ./recommend", true},
		{"bash bench/load.sh", true},
		{"bash bench/no-such.sh", false},
		{"curl -s localhost:8080/v1/users/alice/intent?session_id=s1", true},
		{"curl -s -XPOST localhost:8080/v1/recommend -H 'Content-Type: application/json' -d '{}'", true},
		{"curl -s localhost:8080/v1/recommend --json '{}'", true},
		{"curl -s -XPOST localhost:8080/v1/recommend -d '{}'", false},
		{"curl -s -XPUT localhost:8080/v1/items -H 'Content-Type: text/plain' -d @items.json", false},
		{"curl -s -XDELETE localhost:8080/v1/recommend", false},
		{"curl -s localhost:8080/v1/nothing", false},
	} {
		cs := commands(block{file: "test", text: tc.line + "\n"})
		if len(cs) != 1 {
			t.Fatalf("%q: %d commands", tc.line, len(cs))
		}
		if err := check(t.Context(), bins, router, cs[0]); (err == nil) != tc.ok {
			t.Errorf("%q: %v, want ok=%v", tc.line, err, tc.ok)
		}
	}
	for _, tc := range []struct {
		line    string
		keyless bool
	}{
		{"curl -s -XPOST localhost:8080/v1/recommend -H 'Content-Type: application/json' -d '{}'", true},
		{"curl -s -XPOST -H \"Authorization: Bearer $KEY\" localhost:8080/v1/recommend -H 'Content-Type: application/json' -d '{}'", false},
		{"curl -s -H 'X-API-Key: k' localhost:8080/v1/policy", false},
		{"curl -s localhost:8080/v1/policy", true},
		{"curl -s localhost:8080/readyz", false},
		{"curl -s localhost:8080/openapi.json", false},
	} {
		if got := keyless(router, commands(block{file: "test", text: tc.line + "\n"})[0]); got != tc.keyless {
			t.Errorf("%q: keyless %v, want %v", tc.line, got, tc.keyless)
		}
	}
}

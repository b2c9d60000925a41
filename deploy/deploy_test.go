// Package deploy_test validates the deployment files in deploy/: the
// Dockerfile, the compose file, the Kubernetes manifests, the Prometheus
// configuration and alert rules, and the Grafana dashboard. The tests only
// read files (and run promtool when it is installed): they need no Docker,
// no cluster and no network.
//
//	go test ./deploy/
package deploy_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/novarec/novarec/experiment"
)

// root is the module root, seen from this package's directory.
const root = ".."

const modulePath = "github.com/novarec/novarec"

// ---------------------------------------------------------------------------
// helpers

func readFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// yamlDocs decodes every document of a YAML file. yaml.v3 rejects
// duplicate mapping keys, which silently override each other elsewhere.
func yamlDocs(t *testing.T, rel string) []any {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, rel)))
	var docs []any
	for {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		if v != nil {
			docs = append(docs, v)
		}
	}
}

func yamlDoc(t *testing.T, rel string) map[string]any {
	t.Helper()
	docs := yamlDocs(t, rel)
	if len(docs) != 1 {
		t.Fatalf("%s: %d YAML documents, want 1", rel, len(docs))
	}
	m, ok := docs[0].(map[string]any)
	if !ok {
		t.Fatalf("%s: top level is %T, want a mapping", rel, docs[0])
	}
	return m
}

// get walks a decoded YAML/JSON value along keys (strings for mappings,
// ints for sequences) and returns nil when a step is missing.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			s, ok := v.([]any)
			if !ok || k >= len(s) {
				return nil
			}
			v = s[k]
		}
	}
	return v
}

func str(v any, path ...any) string {
	s, _ := get(v, path...).(string)
	return s
}

func list(v any, path ...any) []any {
	s, _ := get(v, path...).([]any)
	return s
}

func mapping(v any, path ...any) map[string]any {
	m, _ := get(v, path...).(map[string]any)
	return m
}

// sourceFiles returns the module's non-test Go files (outside deploy/).
func sourceFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if p != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "deploy") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// literals collects the first submatch of re over the module's Go source.
func literals(t *testing.T, re *regexp.Regexp) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, f := range sourceFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllSubmatch(b, -1) {
			out[string(m[1])] = true
		}
	}
	return out
}

var (
	metricLiteral = regexp.MustCompile(`"(novarec_[a-z0-9_]+)"`)
	envLiteral    = regexp.MustCompile(`"((?:NOVAREC|REDIS|KAFKA)_[A-Z0-9_]+)"`)
)

// exportedMetrics are the metric names the service's source defines.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	m := literals(t, metricLiteral)
	if len(m) < 20 {
		t.Fatalf("found only %d novarec_ metric names in the source: %v", len(m), m)
	}
	return m
}

// knownEnv are the environment variables recsvc and the trainer read, plus
// the Go runtime's own.
func knownEnv(t *testing.T) map[string]bool {
	t.Helper()
	m := literals(t, envLiteral)
	for _, v := range []string{"REDIS_ADDR", "KAFKA_BROKERS", "NOVAREC_ADMIN_TOKEN", "NOVAREC_PREFIX"} {
		if !m[v] {
			t.Fatalf("the source does not read %s any more; update this test", v)
		}
	}
	for _, v := range []string{"GOMEMLIMIT", "GOMAXPROCS", "GOGC", "GODEBUG", "GOTRACEBACK"} {
		m[v] = true
	}
	return m
}

var (
	promString = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	promIdent  = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
)

// metricNames returns the metric names a PromQL expression references
// (those of novarec and of the Go and process collectors).
func metricNames(expr string) []string {
	expr = promString.ReplaceAllString(expr, `""`)
	var out []string
	for _, id := range promIdent.FindAllString(expr, -1) {
		if strings.HasPrefix(id, "novarec_") || strings.HasPrefix(id, "go_") || strings.HasPrefix(id, "process_") {
			out = append(out, id)
		}
	}
	return out
}

// unknownMetrics returns the novarec_ names in expr that the source does not
// export (a histogram's _bucket, _sum and _count series count as its name).
// Go runtime and process metrics are registered by both binaries and pass.
func unknownMetrics(expr string, exported map[string]bool) []string {
	var out []string
	for _, name := range metricNames(expr) {
		if !strings.HasPrefix(name, "novarec_") || exported[name] {
			continue
		}
		known := false
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(name, suffix); ok && exported[b] {
				known = true
			}
		}
		if !known {
			out = append(out, name)
		}
	}
	return out
}

func checkMetrics(t *testing.T, where, expr string, exported map[string]bool) {
	t.Helper()
	for _, name := range unknownMetrics(expr, exported) {
		t.Errorf("%s: metric %s is not exported by recsvc or the trainer (no %q literal in the Go source)", where, name, name)
	}
}

// ---------------------------------------------------------------------------
// every YAML file

func TestYAMLFilesParse(t *testing.T) {
	n := 0
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if ext := filepath.Ext(p); ext == ".yml" || ext == ".yaml" {
			n++
			if docs := yamlDocs(t, filepath.Join("deploy", p)); len(docs) == 0 {
				t.Errorf("%s: no YAML document", p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Errorf("found %d YAML files under deploy/, want at least 10", n)
	}
}

// ---------------------------------------------------------------------------
// Dockerfile

type instruction struct {
	cmd  string // upper case
	args string
	line int
}

type stage struct {
	name, base string
	instrs     []instruction
}

// parseDockerfile splits a Dockerfile into stages of instructions, joining
// continuation lines and dropping comments.
func parseDockerfile(t *testing.T, b []byte) []stage {
	t.Helper()
	var (
		stages []stage
		cur    strings.Builder
		start  int
	)
	flush := func() {
		text := strings.TrimSpace(cur.String())
		cur.Reset()
		if text == "" {
			return
		}
		cmd, args, _ := strings.Cut(text, " ")
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			var st stage
			for i := 0; i < len(f); i++ {
				switch {
				case strings.HasPrefix(f[i], "--"):
				case strings.EqualFold(f[i], "AS") && i+1 < len(f):
					st.name = f[i+1]
					i++
				case st.base == "":
					st.base = f[i]
				}
			}
			stages = append(stages, st)
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Errorf("Dockerfile:%d: %s before the first FROM", in.line, in.cmd)
			}
			return
		}
		stages[len(stages)-1].instrs = append(stages[len(stages)-1].instrs, in)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue
		}
		if cur.Len() == 0 {
			if trimmed == "" {
				continue
			}
			start = n
		}
		if s, ok := strings.CutSuffix(strings.TrimRight(line, " \t"), `\`); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(line)
		flush()
	}
	flush()
	return stages
}

func (s stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.instrs {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

func dockerStages(t *testing.T) []stage {
	t.Helper()
	stages := parseDockerfile(t, readFile(t, "deploy/Dockerfile"))
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stages, want a multi-stage build", len(stages))
	}
	return stages
}

func TestDockerfile(t *testing.T) {
	stages := dockerStages(t)
	byName := map[string]stage{}
	for _, s := range stages {
		byName[s.name] = s
	}

	build, ok := byName["build"]
	if !ok {
		t.Fatal(`Dockerfile: no stage "AS build"`)
	}
	if !strings.HasPrefix(build.base, "golang:") {
		t.Errorf("build stage is FROM %s, want golang:", build.base)
	}
	var buildText strings.Builder
	for _, in := range build.instrs {
		buildText.WriteString(in.cmd + " " + in.args + "\n")
	}
	bt := buildText.String()
	if !regexp.MustCompile(`CGO_ENABLED=0`).MatchString(bt) {
		t.Error("build stage does not set CGO_ENABLED=0 (static binary)")
	}
	for _, cmd := range []string{"recsvc", "trainer"} {
		if !strings.Contains(bt, "./cmd/"+cmd) {
			t.Errorf("build stage does not build ./cmd/%s", cmd)
		}
		if _, err := os.Stat(filepath.Join(root, "cmd", cmd, "main.go")); err != nil {
			t.Errorf("./cmd/%s: %v", cmd, err)
		}
	}

	want := map[string]string{"recsvc": "8080", "trainer": "9091"}
	for name, port := range want {
		s, ok := byName[name]
		if !ok {
			t.Errorf("Dockerfile: no stage %q (compose and the README build it with --target)", name)
			continue
		}
		if !strings.HasPrefix(s.base, "gcr.io/distroless/static") && s.base != "scratch" {
			t.Errorf("stage %s is FROM %s, want distroless/static or scratch", name, s.base)
		}
		users := s.all("USER")
		if len(users) == 0 {
			t.Errorf("stage %s sets no USER: it would run as root", name)
		} else {
			u, _, _ := strings.Cut(users[len(users)-1].args, ":")
			if n, err := strconv.Atoi(u); (err == nil && n == 0) || (err != nil && u != "nonroot") {
				t.Errorf("stage %s runs as USER %s, want a non-root user (65532 or nonroot)", name, u)
			}
		}
		if exp := s.all("EXPOSE"); len(exp) == 0 || !slices.Contains(strings.Fields(exp[0].args), port) {
			t.Errorf("stage %s does not EXPOSE %s", name, port)
		}
		ep := s.all("ENTRYPOINT")
		var argv []string
		if len(ep) != 1 || json.Unmarshal([]byte(ep[0].args), &argv) != nil || len(argv) == 0 {
			t.Errorf("stage %s: want one exec-form ENTRYPOINT [\"/path/%s\"], got %v", name, name, ep)
		} else if path.Base(argv[0]) != name {
			t.Errorf("stage %s: ENTRYPOINT runs %s", name, argv[0])
		}
		copied := false
		for _, c := range s.all("COPY") {
			if strings.Contains(c.args, "--from=build") && strings.Contains(c.args, "/"+name) {
				copied = true
			}
		}
		if !copied {
			t.Errorf("stage %s does not COPY --from=build its binary", name)
		}
		if hc := s.all("HEALTHCHECK"); len(hc) > 0 {
			t.Errorf("stage %s has a HEALTHCHECK, but distroless has no shell or curl to run one: use the k8s probes", name)
		}
	}
	if last := stages[len(stages)-1].name; last != "recsvc" {
		t.Errorf("the last stage (the default target) is %q, want recsvc", last)
	}
	for _, s := range stages {
		for _, in := range s.all("ADD") {
			if strings.Contains(in.args, "://") {
				t.Errorf("Dockerfile:%d: ADD of a URL; download in a RUN step with a checksum instead", in.line)
			}
		}
		if strings.HasSuffix(s.base, ":latest") || !strings.Contains(s.base, ":") && s.base != "scratch" {
			t.Errorf("stage %s: base image %s has no pinned tag", s.name, s.base)
		}
	}
}

// dockerignoreExcludes reports whether the .dockerignore patterns exclude rel
// (slash-separated, relative to the context), following Docker's rules: a
// pattern matches a path or any of its parent directories, "**" spans
// directories, and the last matching pattern wins ("!" re-includes).
func dockerignoreExcludes(patterns []string, rel string) bool {
	excluded := false
	for _, p := range patterns {
		neg := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(strings.TrimPrefix(p, "!"), "/")
		re := regexp.MustCompile("^" + globToRegexp(path.Clean(p)) + "$")
		parts := strings.Split(rel, "/")
		for i := 1; i <= len(parts); i++ {
			if re.MatchString(strings.Join(parts[:i], "/")) {
				excluded = !neg
				break
			}
		}
	}
	return excluded
}

func globToRegexp(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case strings.HasPrefix(p[i:], "**/"):
			b.WriteString(`(?:.*/)?`)
			i += 2
		case strings.HasPrefix(p[i:], "**"):
			b.WriteString(`.*`)
			i++
		case c == '*':
			b.WriteString(`[^/]*`)
		case c == '?':
			b.WriteString(`[^/]`)
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	return b.String()
}

// buildPackages returns the module-relative directories of the packages
// cmd/recsvc and cmd/trainer import, directly or not.
func buildPackages(t *testing.T) []string {
	t.Helper()
	seen := map[string]bool{}
	queue := []string{"cmd/recsvc", "cmd/trainer"}
	for len(queue) > 0 {
		dir := queue[0]
		queue = queue[1:]
		if seen[dir] {
			continue
		}
		seen[dir] = true
		pkgs, err := parser.ParseDir(token.NewFileSet(), filepath.Join(root, dir), func(fi fs.FileInfo) bool {
			return !strings.HasSuffix(fi.Name(), "_test.go")
		}, parser.ImportsOnly)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		for _, p := range pkgs {
			for _, f := range p.Files {
				for _, imp := range f.Imports {
					ip, _ := strconv.Unquote(imp.Path.Value)
					if rest, ok := strings.CutPrefix(ip, modulePath+"/"); ok {
						queue = append(queue, rest)
					}
				}
			}
		}
	}
	out := make([]string, 0, len(seen))
	for d := range seen {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}

func TestDockerignoreKeepsWhatTheBuildNeeds(t *testing.T) {
	var patterns []string
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, "deploy/Dockerfile.dockerignore")))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, l)
		}
	}
	// Sanity check of the matcher itself.
	for rel, want := range map[string]bool{".git/HEAD": true, "api/api.test": true, "trainer/trainer.go": false, "zz_tmp_x/a.go": true} {
		if got := dockerignoreExcludes(patterns, rel); got != want {
			t.Errorf("matcher: %s excluded = %v, want %v", rel, got, want)
		}
	}
	for _, f := range []string{"go.mod", "go.sum"} {
		if dockerignoreExcludes(patterns, f) {
			t.Errorf("the build context excludes %s", f)
		}
	}
	pkgs := buildPackages(t)
	if len(pkgs) < 8 {
		t.Fatalf("found only %d packages in the build: %v", len(pkgs), pkgs)
	}
	for _, dir := range pkgs {
		entries, err := os.ReadDir(filepath.Join(root, dir))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if rel := dir + "/" + e.Name(); strings.HasSuffix(rel, ".go") && dockerignoreExcludes(patterns, rel) {
				t.Errorf("Dockerfile.dockerignore excludes %s, which the images need", rel)
			}
		}
	}
}

// ---------------------------------------------------------------------------
// compose

func TestCompose(t *testing.T) {
	c := yamlDoc(t, "deploy/compose.yaml")
	services := mapping(c, "services")
	for _, s := range []string{"redis", "kafka", "recsvc", "trainer", "prometheus", "grafana"} {
		if services[s] == nil {
			t.Errorf("compose: no service %q", s)
		}
	}

	kafka := mapping(services, "kafka", "environment")
	roles := fmt.Sprint(kafka["KAFKA_PROCESS_ROLES"])
	if !strings.Contains(roles, "broker") || !strings.Contains(roles, "controller") {
		t.Errorf("kafka: KAFKA_PROCESS_ROLES = %q, want KRaft broker,controller", roles)
	}
	for _, k := range []string{"KAFKA_NODE_ID", "KAFKA_CONTROLLER_QUORUM_VOTERS", "KAFKA_CONTROLLER_LISTENER_NAMES", "KAFKA_LISTENERS", "KAFKA_ADVERTISED_LISTENERS", "CLUSTER_ID"} {
		if kafka[k] == nil {
			t.Errorf("kafka: %s is not set (KRaft single node)", k)
		}
	}
	if !strings.HasPrefix(str(services, "kafka", "image"), "apache/kafka:") {
		t.Errorf("kafka image = %q, want apache/kafka", str(services, "kafka", "image"))
	}

	stages := map[string]bool{}
	for _, s := range dockerStages(t) {
		stages[s.name] = true
	}
	known := knownEnv(t)
	for _, name := range []string{"recsvc", "trainer"} {
		s := mapping(services, name)
		if target := str(s, "build", "target"); !stages[target] {
			t.Errorf("%s: build target %q is not a Dockerfile stage", name, target)
		}
		if df := str(s, "build", "dockerfile"); df != "" {
			if _, err := os.Stat(filepath.Join(".", str(s, "build", "context"), df)); err != nil {
				t.Errorf("%s: dockerfile %s relative to context %s: %v", name, df, str(s, "build", "context"), err)
			}
		}
		env := mapping(s, "environment")
		for _, k := range []string{"REDIS_ADDR", "KAFKA_BROKERS"} {
			if env[k] == nil {
				t.Errorf("%s: %s is not set (it would start in embedded mode)", name, k)
			}
		}
		for k := range env {
			if !known[k] {
				t.Errorf("%s: environment variable %s is read by neither recsvc nor the trainer", name, k)
			}
		}
		if s["read_only"] != true {
			t.Errorf("%s: read_only is not true", name)
		}
	}
	// Exactly one trainer: recsvc must not run its own learner or updater.
	env := mapping(services, "recsvc", "environment")
	if env["NOVAREC_TRAINER"] != "off" || env["NOVAREC_FEATURE_UPDATER"] != "off" {
		t.Errorf("recsvc: NOVAREC_TRAINER=%v NOVAREC_FEATURE_UPDATER=%v, want off/off next to the trainer service",
			env["NOVAREC_TRAINER"], env["NOVAREC_FEATURE_UPDATER"])
	}

	// Bind mounts point at files that exist.
	for name, s := range services {
		for _, v := range list(s, "volumes") {
			src, _, _ := strings.Cut(fmt.Sprint(v), ":")
			if strings.HasPrefix(src, "./") || strings.HasPrefix(src, "../") {
				if _, err := os.Stat(src); err != nil {
					t.Errorf("%s: volume source %s: %v", name, src, err)
				}
			}
		}
	}
}

// ---------------------------------------------------------------------------
// Kubernetes

type k8sObject struct {
	file string
	obj  map[string]any
}

func (o k8sObject) kind() string { return str(o.obj, "kind") }
func (o k8sObject) name() string { return str(o.obj, "metadata", "name") }

func k8sObjects(t *testing.T) []k8sObject {
	t.Helper()
	kust := yamlDoc(t, "deploy/k8s/kustomization.yaml")
	if str(kust, "kind") != "Kustomization" {
		t.Fatalf("kustomization.yaml: kind = %q", str(kust, "kind"))
	}
	var objs []k8sObject
	listed := map[string]bool{}
	for _, r := range list(kust, "resources") {
		f := fmt.Sprint(r)
		listed[f] = true
		for _, d := range yamlDocs(t, filepath.Join("deploy/k8s", f)) {
			m, ok := d.(map[string]any)
			if !ok {
				t.Fatalf("k8s/%s: a document is %T", f, d)
			}
			objs = append(objs, k8sObject{f, m})
		}
	}
	entries, err := os.ReadDir("k8s")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if n := e.Name(); (strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) && n != "kustomization.yaml" && !listed[n] {
			t.Errorf("k8s/%s is not listed in kustomization.yaml resources", n)
		}
	}
	return objs
}

func TestKubernetesManifests(t *testing.T) {
	objs := k8sObjects(t)
	kinds := map[string][]k8sObject{}
	names := map[string]bool{}
	for _, o := range objs {
		if str(o.obj, "apiVersion") == "" || o.kind() == "" || o.name() == "" {
			t.Errorf("k8s/%s: object without apiVersion, kind or metadata.name: %v", o.file, o.obj)
			continue
		}
		id := o.kind() + "/" + o.name()
		if names[id] {
			t.Errorf("k8s/%s: %s defined twice", o.file, id)
		}
		names[id] = true
		kinds[o.kind()] = append(kinds[o.kind()], o)
		if o.kind() == "Secret" {
			t.Errorf("k8s/%s: Secret %s is committed; the admin token must be created out of band", o.file, o.name())
		}
	}
	for kind, want := range map[string]int{"Deployment": 2, "Service": 2, "HorizontalPodAutoscaler": 1, "PodDisruptionBudget": 1, "ConfigMap": 2} {
		if len(kinds[kind]) < want {
			t.Errorf("k8s: %d %s objects, want at least %d", len(kinds[kind]), kind, want)
		}
	}

	known := knownEnv(t)
	configMaps := map[string]map[string]any{}
	for _, cm := range kinds["ConfigMap"] {
		configMaps[cm.name()] = mapping(cm.obj, "data")
	}
	deployments := map[string]k8sObject{}
	for _, d := range kinds["Deployment"] {
		deployments[d.name()] = d
		checkDeployment(t, d, configMaps, known)
	}

	recsvc, ok := deployments["recsvc"]
	if !ok {
		t.Fatal("k8s: no Deployment recsvc")
	}
	if get(recsvc.obj, "spec", "replicas") != nil {
		t.Error("recsvc: spec.replicas is set, but the HPA owns the replica count (apply would reset it)")
	}
	c := get(recsvc.obj, "spec", "template", "spec", "containers", 0)
	if p := str(c, "readinessProbe", "httpGet", "path"); p != "/readyz" {
		t.Errorf("recsvc: readiness probe path %q, want /readyz", p)
	}
	if p := str(c, "livenessProbe", "httpGet", "path"); p != "/healthz" {
		t.Errorf("recsvc: liveness probe path %q, want /healthz", p)
	}
	tokenFromSecret := false
	for _, e := range list(c, "env") {
		if str(e, "name") == "NOVAREC_ADMIN_TOKEN" && str(e, "valueFrom", "secretKeyRef", "name") != "" {
			tokenFromSecret = true
		}
		if str(e, "name") == "NOVAREC_ADMIN_TOKEN" && get(e, "value") != nil {
			t.Error("recsvc: NOVAREC_ADMIN_TOKEN has a literal value in the manifest")
		}
	}
	if !tokenFromSecret {
		t.Error("recsvc: NOVAREC_ADMIN_TOKEN does not come from a Secret")
	}

	trainer, ok := deployments["trainer"]
	if !ok {
		t.Fatal("k8s: no Deployment trainer")
	}
	if r, _ := get(trainer.obj, "spec", "replicas").(int); r != 1 {
		t.Errorf("trainer: replicas = %v, want exactly 1", get(trainer.obj, "spec", "replicas"))
	}
	if s := str(trainer.obj, "spec", "strategy", "type"); s != "Recreate" {
		t.Errorf("trainer: strategy %q, want Recreate (never two trainers of a variant at once)", s)
	}

	for _, h := range kinds["HorizontalPodAutoscaler"] {
		ref := mapping(h.obj, "spec", "scaleTargetRef")
		if str(ref, "kind") != "Deployment" || str(ref, "name") != "recsvc" {
			t.Errorf("HPA %s scales %s/%s, want Deployment/recsvc", h.name(), str(ref, "kind"), str(ref, "name"))
		}
		if str(h.obj, "spec", "metrics", 0, "resource", "name") != "cpu" {
			t.Errorf("HPA %s does not scale on CPU", h.name())
		}
		if minR, _ := get(h.obj, "spec", "minReplicas").(int); minR < 2 {
			t.Errorf("HPA %s: minReplicas %d, want at least 2 (the PDB then allows a drain)", h.name(), minR)
		}
	}

	// Selectors of Services and PDBs match pod labels; Service target ports
	// name container ports.
	matches := func(sel map[string]any, d k8sObject) bool {
		labels := mapping(d.obj, "spec", "template", "metadata", "labels")
		for k, v := range sel {
			if labels[k] != v {
				return false
			}
		}
		return len(sel) > 0
	}
	for _, s := range kinds["Service"] {
		sel := mapping(s.obj, "spec", "selector")
		var target *k8sObject
		for _, d := range deployments {
			if matches(sel, d) {
				target = &d
			}
		}
		if target == nil {
			t.Errorf("Service %s: selector %v matches no Deployment's pods", s.name(), sel)
			continue
		}
		ports := containerPorts(target.obj)
		for _, p := range list(s.obj, "spec", "ports") {
			tp := fmt.Sprint(get(p, "targetPort"))
			if _, ok := ports[tp]; !ok {
				t.Errorf("Service %s: targetPort %s is not a port of %s (%v)", s.name(), tp, target.name(), ports)
			}
		}
	}
	for _, p := range kinds["PodDisruptionBudget"] {
		if !matches(mapping(p.obj, "spec", "selector", "matchLabels"), recsvc) {
			t.Errorf("PDB %s does not select the recsvc pods", p.name())
		}
	}

	// The sample experiments file is valid for the service.
	exps, ok := configMaps["novarec-experiments"]["experiments.yaml"].(string)
	if !ok {
		t.Fatal("ConfigMap novarec-experiments has no experiments.yaml")
	}
	if _, err := experiment.Parse([]byte(exps)); err != nil {
		t.Errorf("ConfigMap novarec-experiments: %v", err)
	}
	if env := configMaps["novarec-env"]; env != nil {
		for k, v := range env {
			if !known[k] {
				t.Errorf("ConfigMap novarec-env: %s is read by neither recsvc nor the trainer", k)
			}
			if strings.Contains(strings.ToUpper(k), "TOKEN") || strings.Contains(strings.ToUpper(k), "PASSWORD") {
				t.Errorf("ConfigMap novarec-env: %s=%v belongs in a Secret", k, v)
			}
		}
		if path := fmt.Sprint(env["NOVAREC_EXPERIMENTS"]); path != "" && !strings.HasPrefix(path, "/etc/novarec/experiments/") {
			t.Errorf("NOVAREC_EXPERIMENTS=%s is not in the mounted ConfigMap", path)
		}
	} else {
		t.Error("no ConfigMap novarec-env")
	}
}

func containerPorts(d map[string]any) map[string]string {
	ports := map[string]string{}
	for _, c := range list(d, "spec", "template", "spec", "containers") {
		for _, p := range list(c, "ports") {
			n := fmt.Sprint(get(p, "containerPort"))
			ports[n] = n
			if name := str(p, "name"); name != "" {
				ports[name] = n
			}
		}
	}
	return ports
}

func checkDeployment(t *testing.T, d k8sObject, configMaps map[string]map[string]any, known map[string]bool) {
	t.Helper()
	name := d.name()
	sel := mapping(d.obj, "spec", "selector", "matchLabels")
	labels := mapping(d.obj, "spec", "template", "metadata", "labels")
	for k, v := range sel {
		if labels[k] != v {
			t.Errorf("%s: selector %s=%v does not match the pod template labels", name, k, v)
		}
	}
	pod := mapping(d.obj, "spec", "template", "spec")
	if get(pod, "securityContext", "runAsNonRoot") != true {
		t.Errorf("%s: pod securityContext.runAsNonRoot is not true", name)
	}
	if u, _ := get(pod, "securityContext", "runAsUser").(int); u == 0 {
		t.Errorf("%s: pod securityContext.runAsUser is 0 or unset (distroless nonroot is 65532)", name)
	}
	if get(pod, "automountServiceAccountToken") != false {
		t.Errorf("%s: automountServiceAccountToken is not false (the pods never call the API server)", name)
	}
	ports := containerPorts(d.obj)
	if ann := mapping(d.obj, "spec", "template", "metadata", "annotations"); ann["prometheus.io/scrape"] == "true" {
		if p := fmt.Sprint(ann["prometheus.io/port"]); ports[p] == "" {
			t.Errorf("%s: prometheus.io/port %s is not a container port", name, p)
		}
	}
	volumes := map[string]bool{}
	for _, v := range list(pod, "volumes") {
		volumes[str(v, "name")] = true
		if cm := str(v, "configMap", "name"); cm != "" && configMaps[cm] == nil {
			t.Errorf("%s: volume %s uses ConfigMap %s, which is not defined", name, str(v, "name"), cm)
		}
	}
	containers := list(pod, "containers")
	if len(containers) == 0 {
		t.Fatalf("%s: no containers", name)
	}
	for _, c := range containers {
		cn := name + "/" + str(c, "name")
		for _, probe := range []string{"readinessProbe", "livenessProbe"} {
			p := mapping(c, probe)
			if p == nil {
				t.Errorf("%s: no %s", cn, probe)
				continue
			}
			if port := fmt.Sprint(get(p, "httpGet", "port")); ports[port] == "" {
				t.Errorf("%s: %s port %s is not a container port", cn, probe, port)
			}
		}
		for _, kind := range []string{"requests", "limits"} {
			for _, res := range []string{"cpu", "memory"} {
				if get(c, "resources", kind, res) == nil {
					t.Errorf("%s: no resources.%s.%s", cn, kind, res)
				}
			}
		}
		sc := mapping(c, "securityContext")
		if sc["readOnlyRootFilesystem"] != true {
			t.Errorf("%s: readOnlyRootFilesystem is not true", cn)
		}
		if sc["allowPrivilegeEscalation"] != false {
			t.Errorf("%s: allowPrivilegeEscalation is not false", cn)
		}
		if !slices.Contains(list(sc, "capabilities", "drop"), any("ALL")) {
			t.Errorf("%s: capabilities are not dropped (drop: [ALL])", cn)
		}
		if get(sc, "runAsNonRoot") == false {
			t.Errorf("%s: runAsNonRoot is false", cn)
		}
		for _, ef := range list(c, "envFrom") {
			if cm := str(ef, "configMapRef", "name"); cm != "" && configMaps[cm] == nil {
				t.Errorf("%s: envFrom ConfigMap %s is not defined", cn, cm)
			}
		}
		for _, e := range list(c, "env") {
			if n := str(e, "name"); !known[n] {
				t.Errorf("%s: env %s is read by neither recsvc nor the trainer", cn, n)
			}
		}
		for _, vm := range list(c, "volumeMounts") {
			if !volumes[str(vm, "name")] {
				t.Errorf("%s: volumeMount %s has no volume", cn, str(vm, "name"))
			}
			if get(vm, "subPath") != nil {
				t.Errorf("%s: volumeMount %s uses subPath, which never sees ConfigMap updates", cn, str(vm, "name"))
			}
		}
		if img := str(c, "image"); !strings.HasPrefix(img, "novarec/"+name+":") {
			t.Errorf("%s: image %q, want novarec/%s:TAG (kustomization images rewrites it)", cn, img, name)
		}
	}
}

// ---------------------------------------------------------------------------
// Prometheus

func TestPrometheusConfig(t *testing.T) {
	cfg := yamlDoc(t, "deploy/prometheus/prometheus.yml")
	for _, rf := range list(cfg, "rule_files") {
		if _, err := os.Stat(filepath.Join("prometheus", fmt.Sprint(rf))); err != nil {
			t.Errorf("rule_files: %v", err)
		}
	}
	compose := mapping(yamlDoc(t, "deploy/compose.yaml"), "services")
	targets := map[string]bool{}
	for _, sc := range list(cfg, "scrape_configs") {
		for _, st := range list(sc, "static_configs") {
			for _, tg := range list(st, "targets") {
				targets[fmt.Sprint(tg)] = true
				host, _, _ := strings.Cut(fmt.Sprint(tg), ":")
				if host != "localhost" && compose[host] == nil {
					t.Errorf("scrape target %s is not a compose service", tg)
				}
			}
		}
	}
	for _, want := range []string{"recsvc:8080", "trainer:9091"} {
		if !targets[want] {
			t.Errorf("prometheus.yml does not scrape %s", want)
		}
	}
}

type alertRule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func alertRules(t *testing.T) []alertRule {
	t.Helper()
	var f struct {
		Groups []struct {
			Name  string      `yaml:"name"`
			Rules []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, "deploy/prometheus/rules.yml")))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("rules.yml: %v", err)
	}
	var rules []alertRule
	for _, g := range f.Groups {
		rules = append(rules, g.Rules...)
	}
	return rules
}

func TestAlertRules(t *testing.T) {
	exported := exportedMetrics(t)
	rules := alertRules(t)
	byName := map[string]alertRule{}
	for _, r := range rules {
		if r.Alert == "" {
			t.Errorf("rule %q is not an alert (recording rules would need the metric check to know their names)", r.Record)
			continue
		}
		if _, dup := byName[r.Alert]; dup {
			t.Errorf("alert %s defined twice", r.Alert)
		}
		byName[r.Alert] = r
		if sev := r.Labels["severity"]; sev != "page" && sev != "ticket" {
			t.Errorf("%s: severity %q, want page or ticket", r.Alert, sev)
		}
		if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
			t.Errorf("%s: needs summary and description annotations", r.Alert)
		}
		if len(metricNames(r.Expr)) == 0 {
			t.Errorf("%s: expression names no novarec metric: %s", r.Alert, r.Expr)
		}
		checkMetrics(t, "rules.yml "+r.Alert, r.Expr, exported)
	}
	// What issue 6 asks the alerts to cover, by the metric each must use.
	for what, metric := range map[string]string{
		"HTTP 5xx error rate":       "novarec_http_requests_total",
		"p99 latency of recommend":  "novarec_http_request_duration_seconds_bucket",
		"consumer lag":              "novarec_events_consumer_lag",
		"model staleness (recsvc)":  "novarec_model_swaps_total",
		"model staleness (trainer)": "novarec_trainer_model_version",
		"Redis down":                "novarec_redis_up",
		"dropped events":            "novarec_events_dropped_total",
		"freshness p95":             "novarec_model_freshness_seconds_bucket",
	} {
		found := false
		for _, r := range rules {
			if slices.Contains(metricNames(r.Expr), metric) {
				found = true
			}
		}
		if !found {
			t.Errorf("no alert covers %s (no rule uses %s)", what, metric)
		}
	}
	// README documents every alert.
	readme := string(readFile(t, "deploy/README.md"))
	for name := range byName {
		if !strings.Contains(readme, name) {
			t.Errorf("deploy/README.md does not explain alert %s", name)
		}
	}

	// The unit tests' input series are real metrics too.
	var tests struct {
		Tests []struct {
			InputSeries []struct {
				Series string `yaml:"series"`
			} `yaml:"input_series"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(readFile(t, "deploy/prometheus/rules_test.yml"), &tests); err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests.Tests {
		for _, s := range tc.InputSeries {
			checkMetrics(t, "rules_test.yml", s.Series, exported)
		}
	}
}

// ---------------------------------------------------------------------------
// Grafana

type dashboardPanel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []dashboardPanel `json:"panels"`
}

type dashboard struct {
	UID        string           `json:"uid"`
	Title      string           `json:"title"`
	Panels     []dashboardPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name string `json:"name"`
			Type string `json:"type"`
		} `json:"list"`
	} `json:"templating"`
}

func loadDashboard(t *testing.T) (dashboard, []dashboardPanel) {
	t.Helper()
	var d dashboard
	dec := json.NewDecoder(bytes.NewReader(readFile(t, "deploy/grafana/novarec.json")))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("novarec.json: %v", err)
	}
	var flat []dashboardPanel
	var walk func([]dashboardPanel)
	walk = func(ps []dashboardPanel) {
		for _, p := range ps {
			flat = append(flat, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return d, flat
}

var grafanaVar = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)`)

func TestDashboard(t *testing.T) {
	d, panels := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Error("dashboard needs a uid and a title")
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	exported := exportedMetrics(t)
	used := map[string]bool{}
	ids := map[int]bool{}
	queries := 0
	for _, p := range panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v does not fit 24 columns", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		if p.Datasource == nil || p.Datasource.Type != "prometheus" {
			t.Errorf("panel %q: datasource is not Prometheus", p.Title)
		}
		for _, tg := range p.Targets {
			queries++
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q query %s is empty", p.Title, tg.RefID)
			}
			for _, m := range grafanaVar.FindAllStringSubmatch(tg.Expr, -1) {
				if !strings.HasPrefix(m[1], "__") && !vars[m[1]] {
					t.Errorf("panel %q uses $%s, which is not a dashboard variable", p.Title, m[1])
				}
			}
			checkMetrics(t, fmt.Sprintf("dashboard panel %q", p.Title), tg.Expr, exported)
			for _, n := range metricNames(tg.Expr) {
				used[n] = true
				for _, s := range []string{"_bucket", "_sum", "_count"} {
					if b, ok := strings.CutSuffix(n, s); ok {
						used[b] = true
					}
				}
			}
		}
	}
	if queries < 20 {
		t.Errorf("the dashboard has %d queries, want at least 20", queries)
	}
	// The panels issue 6 and deploy/README.md promise.
	for _, m := range []string{
		"novarec_http_requests_total", "novarec_http_request_duration_seconds", "novarec_intent_level_total",
		"novarec_recommend_degraded_total", "novarec_redis_duration_seconds", "novarec_events_published_total",
		"novarec_events_dropped_total", "novarec_events_buffered", "novarec_events_consumer_lag",
		"novarec_trainer_updates_total", "novarec_trainer_reward", "novarec_trainer_model_version",
		"novarec_model_freshness_seconds", "novarec_catalog_items",
	} {
		if !used[m] {
			t.Errorf("no dashboard panel shows %s", m)
		}
	}
	var missing []string
	for m := range exported {
		if !used[m] {
			missing = append(missing, m)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Logf("exported metrics not on the dashboard (fine, but consider a panel): %v", missing)
	}
}

func TestMetricNameExtraction(t *testing.T) {
	got := metricNames(`sum by (le) (rate(novarec_x_bucket{route="novarec_not_a_metric", a='novarec_no'}[5m])) / go_goroutines + process_cpu_seconds_total`)
	want := []string{"novarec_x_bucket", "go_goroutines", "process_cpu_seconds_total"}
	if !slices.Equal(got, want) {
		t.Errorf("metricNames = %v, want %v", got, want)
	}
	exported := map[string]bool{"novarec_x": true}
	got = unknownMetrics(`novarec_x + novarec_x_bucket + novarec_x_count + novarec_x_sum + go_gc_duration_seconds + novarec_y + novarec_y_bucket`, exported)
	if want := []string{"novarec_y", "novarec_y_bucket"}; !slices.Equal(got, want) {
		t.Errorf("unknownMetrics = %v, want %v", got, want)
	}
}

// ---------------------------------------------------------------------------
// promtool (skipped when it is not installed: apt-get install prometheus)

func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian: apt-get install prometheus); the YAML checks above still ran")
	}
	return p
}

func runPromtool(t *testing.T, bin string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = "."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestPromtool(t *testing.T) {
	bin := promtool(t)
	runPromtool(t, bin, "check", "config", "prometheus/prometheus.yml")
	runPromtool(t, bin, "check", "rules", "prometheus/rules.yml")
	runPromtool(t, bin, "test", "rules", "prometheus/rules_test.yml")

	// The dashboard's queries must be valid PromQL: check them as the
	// expressions of recording rules, with Grafana's variables filled in.
	_, panels := loadDashboard(t)
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	fill := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h", "${variant}", ".*", "$variant", ".*")
	for _, p := range panels {
		for _, tg := range p.Targets {
			expr, err := json.Marshal(fill.Replace(tg.Expr)) // a JSON string is a valid YAML scalar
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "      - record: dashboard:panel%d_%s\n        expr: %s\n", p.ID, tg.RefID, expr)
		}
	}
	f := filepath.Join(t.TempDir(), "dashboard_rules.yml")
	if err := os.WriteFile(f, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(f)
	if err != nil {
		t.Fatal(err)
	}
	runPromtool(t, bin, "check", "rules", abs)
}

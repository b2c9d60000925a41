package deploy_test

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/novarec/novarec/apikey"
)

// composeDefault is the default of a compose variable reference ${VAR:-default}.
var composeDefault = regexp.MustCompile(`^\$\{[A-Z0-9_]+:-(.+)\}$`)

// devKeyComment is how api-keys.dev shows a public development key.
var devKeyComment = regexp.MustCompile(`(?m)^# key: (\S+)$`)

// TestComposeAPIKeys: recsvc runs on real servers, so it needs API keys; the
// compose stack gives it a keys file as a secret, the default file parses
// and holds only hashes, and the public development keys it documents are
// the ones it holds.
func TestComposeAPIKeys(t *testing.T) {
	c := yamlDoc(t, "deploy/compose.yaml")
	recsvc := mapping(c, "services", "recsvc")
	keysPath := fmt.Sprint(mapping(recsvc, "environment")["NOVAREC_API_KEYS"])
	name, ok := strings.CutPrefix(keysPath, "/run/secrets/")
	if !ok {
		t.Fatalf("recsvc: NOVAREC_API_KEYS=%s is not a compose secret (/run/secrets/NAME)", keysPath)
	}
	if !slices.Contains(list(recsvc, "secrets"), any(name)) {
		t.Errorf("recsvc: NOVAREC_API_KEYS names the secret %s, which the service does not mount", name)
	}
	file := str(c, "secrets", name, "file")
	if m := composeDefault.FindStringSubmatch(file); m != nil {
		file = m[1]
	}
	if file == "" {
		t.Fatalf("compose: secret %s has no file", name)
	}
	b, err := os.ReadFile(file) // relative to deploy/, like compose.yaml
	if err != nil {
		t.Fatalf("compose: secret %s: %v", name, err)
	}
	keys, err := apikey.Parse(b)
	if err != nil {
		t.Fatalf("compose: secret %s (%s): %v", name, file, err)
	}
	scopes := map[apikey.Scope]bool{}
	for _, k := range keys {
		for _, s := range k.Scopes {
			scopes[s] = true
		}
	}
	for _, s := range apikey.Scopes {
		if !scopes[s] {
			t.Errorf("%s: no key of scope %s, so the stack cannot be used fully", file, s)
		}
	}
	documented := devKeyComment.FindAllStringSubmatch(string(b), -1)
	if len(documented) != len(keys) {
		t.Errorf("%s: %d keys but %d documented (# key: ...)", file, len(keys), len(documented))
	}
	for _, m := range documented {
		id, _, _ := strings.Cut(m[1], ".")
		want := apikey.NewKey(id, m[1])
		if !slices.ContainsFunc(keys, func(k apikey.Key) bool { return k.ID == id && k.Hash == want.Hash }) {
			t.Errorf("%s: the documented key of %s does not match its hash", file, id)
		}
		if !strings.Contains(m[1], "public") {
			t.Errorf("%s: documented key %s does not say it is public", file, m[1])
		}
	}
	// The header's curl example uses a documented key.
	if header := string(readFile(t, "deploy/compose.yaml")); len(documented) > 0 && !strings.Contains(header, "Bearer "+documented[0][1]) {
		t.Errorf("compose.yaml: the curl example does not use the key %s", documented[0][1])
	}
}

// TestKubernetesAPIKeys: recsvc reads its keys file from a mounted Secret
// that is required (no Secret, no pod) and mounted without subPath, so that
// the kubelet's updates reach the file and a rotation needs no restart.
func TestKubernetesAPIKeys(t *testing.T) {
	var d map[string]any
	for _, o := range k8sObjects(t) {
		if o.kind() == "Deployment" && o.name() == "recsvc" {
			d = o.obj
		}
	}
	if d == nil {
		t.Fatal("k8s: no Deployment recsvc")
	}
	c := get(d, "spec", "template", "spec", "containers", 0)
	keysPath := ""
	for _, e := range list(c, "env") {
		if str(e, "name") == "NOVAREC_API_KEYS" {
			keysPath = str(e, "value")
		}
	}
	if keysPath == "" {
		t.Fatal("recsvc: NOVAREC_API_KEYS is not set; recsvc refuses real servers without keys")
	}
	volume := ""
	for _, vm := range list(c, "volumeMounts") {
		if mp := str(vm, "mountPath"); path.Dir(keysPath) == path.Clean(mp) {
			volume = str(vm, "name")
		}
	}
	if volume == "" {
		t.Fatalf("recsvc: NOVAREC_API_KEYS=%s is in no mounted directory", keysPath)
	}
	for _, v := range list(d, "spec", "template", "spec", "volumes") {
		if str(v, "name") != volume {
			continue
		}
		if str(v, "secret", "secretName") == "" {
			t.Errorf("recsvc: volume %s of the keys file is not a Secret", volume)
		}
		if get(v, "secret", "optional") == true {
			t.Errorf("recsvc: the keys Secret is optional; without it recsvc cannot serve")
		}
		if items := list(v, "secret", "items"); len(items) > 0 {
			t.Errorf("recsvc: the keys Secret volume selects items; mount the whole Secret so the key %s is there", path.Base(keysPath))
		}
	}
}

// TestNoInsecureOpen: no deployment file runs recsvc without keys.
func TestNoInsecureOpen(t *testing.T) {
	files := []string{"deploy/compose.yaml", "deploy/Dockerfile"}
	k8s, err := filepath.Glob("k8s/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range k8s {
		files = append(files, "deploy/"+f)
	}
	for _, f := range files {
		if strings.Contains(string(readFile(t, f)), "insecure-open") {
			t.Errorf("%s runs recsvc with -insecure-open", f)
		}
	}
}

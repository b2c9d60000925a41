package deploy_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestRedisPersistence: Redis keeps its data across restarts (AOF) in
// compose and in the optional Kubernetes component, on a volume.
func TestRedisPersistence(t *testing.T) {
	c := yamlDoc(t, "deploy/compose.yaml")
	cmd := fmt.Sprint(list(c, "services", "redis", "command"))
	if !strings.Contains(cmd, "--appendonly yes") || !strings.Contains(cmd, "--appendfsync everysec") {
		t.Errorf("compose redis command %s: want AOF with fsync every second", cmd)
	}
	if len(list(c, "services", "redis", "volumes")) == 0 {
		t.Error("compose redis has no volume for its AOF")
	}

	kust := yamlDoc(t, "deploy/k8s/redis/kustomization.yaml")
	var sts, conf map[string]any
	for _, r := range list(kust, "resources") {
		for _, d := range yamlDocs(t, "deploy/k8s/redis/"+fmt.Sprint(r)) {
			m, _ := d.(map[string]any)
			switch str(m, "kind") {
			case "StatefulSet":
				sts = m
			case "ConfigMap":
				conf = m
			}
		}
	}
	if sts == nil || conf == nil {
		t.Fatal("deploy/k8s/redis: want a StatefulSet and its ConfigMap")
	}
	redisConf := fmt.Sprint(mapping(conf, "data")["redis.conf"])
	for _, want := range []string{"appendonly yes", "appendfsync everysec", "dir /data"} {
		if !strings.Contains(redisConf, want) {
			t.Errorf("redis.conf lacks %q", want)
		}
	}
	if str(sts, "spec", "volumeClaimTemplates", 0, "metadata", "name") != "data" {
		t.Error("the Redis StatefulSet has no volume claim template named data")
	}
	c0 := get(sts, "spec", "template", "spec", "containers", 0)
	mounts := map[string]string{}
	for _, vm := range list(c0, "volumeMounts") {
		mounts[str(vm, "name")] = str(vm, "mountPath")
	}
	if mounts["data"] != "/data" || !slices.Contains(list(c0, "args"), any("/etc/redis/redis.conf")) || mounts["config"] != "/etc/redis" {
		t.Errorf("redis container: mounts %v args %v; want the claim at /data and the config file in use", mounts, list(c0, "args"))
	}
	if get(sts, "spec", "template", "spec", "securityContext", "runAsNonRoot") != true || get(c0, "securityContext", "readOnlyRootFilesystem") != true {
		t.Error("the Redis pod runs as root or with a writable root filesystem")
	}
}

// TestFeedbackSpoolIsMounted: where recsvc is told to spool feedback, a
// volume is mounted (the container's root filesystem is read-only).
func TestFeedbackSpoolIsMounted(t *testing.T) {
	c := yamlDoc(t, "deploy/compose.yaml")
	dir := fmt.Sprint(mapping(c, "services", "recsvc", "environment")["NOVAREC_SPOOL_DIR"])
	found := false
	for _, v := range list(c, "services", "recsvc", "volumes") {
		if strings.HasSuffix(fmt.Sprint(v), ":"+dir) {
			found = true
		}
	}
	if dir == "" || !found {
		t.Errorf("compose recsvc: NOVAREC_SPOOL_DIR=%q with volumes %v", dir, list(c, "services", "recsvc", "volumes"))
	}
	var env map[string]any
	var recsvc map[string]any
	for _, o := range k8sObjects(t) {
		switch {
		case o.kind() == "ConfigMap" && o.name() == "novarec-env":
			env = mapping(o.obj, "data")
		case o.kind() == "Deployment" && o.name() == "recsvc":
			recsvc = o.obj
		}
	}
	dir = fmt.Sprint(env["NOVAREC_SPOOL_DIR"])
	mounted := false
	for _, vm := range list(recsvc, "spec", "template", "spec", "containers", 0, "volumeMounts") {
		if str(vm, "mountPath") == dir {
			mounted = true
		}
	}
	if dir == "" || !mounted {
		t.Errorf("k8s recsvc: NOVAREC_SPOOL_DIR=%q is not a mounted volume", dir)
	}
}

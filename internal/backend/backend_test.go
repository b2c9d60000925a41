package backend

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/novarec/novarec/events"
)

// testPKI is a throw-away CA and a server certificate it signed for
// 127.0.0.1 and "localhost".
type testPKI struct {
	caFile string
	server tls.Certificate
}

func newPKI(t *testing.T) testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "novarec test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return testPKI{caFile: caFile, server: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}}
}

// parse registers both flag sets on a fresh FlagSet (reading the
// environment as the commands do) and parses args.
func parse(t *testing.T, args ...string) (*Redis, *Kafka) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(new(bytes.Buffer))
	r, k := RedisFlags(fs), KafkaFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return r, k
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func ping(opts *redis.UniversalOptions) error {
	c := redis.NewUniversalClient(opts)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.Ping(ctx).Err()
}

// TestRedisSentinel: a master name turns the addresses into Sentinels and
// the client into a failover client.
func TestRedisSentinel(t *testing.T) {
	t.Setenv("REDIS_MASTER_NAME", "mymaster")
	t.Setenv("REDIS_SENTINEL_PASSWORD", "sentinel-pw")
	r, _ := parse(t)
	addrs := []string{"s1:26379", "s2:26379", "s3:26379"}
	o, err := r.Options(addrs)
	if err != nil {
		t.Fatal(err)
	}
	f := o.Failover()
	if f.MasterName != "mymaster" || !slices.Equal(f.SentinelAddrs, addrs) || f.SentinelPassword != "sentinel-pw" {
		t.Errorf("failover options: master %q, sentinels %v, sentinel password set %v", f.MasterName, f.SentinelAddrs, f.SentinelPassword != "")
	}
	c := redis.NewUniversalClient(o)
	defer c.Close()
	cl, ok := c.(*redis.Client)
	if !ok || cl.Options().Addr != "FailoverClient" {
		t.Errorf("NewUniversalClient built %T (addr %v), want the failover client", c, cl)
	}

	// Without a master name, several addresses are a Cluster.
	r, _ = parse(t, "-redis-master=")
	o, err = r.Options(addrs)
	if err != nil {
		t.Fatal(err)
	}
	c2 := redis.NewUniversalClient(o)
	defer c2.Close()
	if _, ok := c2.(*redis.ClusterClient); !ok {
		t.Errorf("without -redis-master: %T, want *redis.ClusterClient", c2)
	}
}

func TestRedisAuth(t *testing.T) {
	mr := miniredis.RunT(t)
	mr.RequireUserAuth("alice", "s3cret")

	for _, tc := range []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string // from Options
		pingOK  bool
	}{
		{name: "env", env: map[string]string{"REDIS_USERNAME": "alice", "REDIS_PASSWORD": "s3cret"}, pingOK: true},
		{name: "password file with newline", env: map[string]string{"REDIS_USERNAME": "alice"}, args: []string{"-redis-password-file", "FILE:s3cret\n"}, pingOK: true},
		{name: "flag overrides env user", env: map[string]string{"REDIS_USERNAME": "bob", "REDIS_PASSWORD": "s3cret"}, args: []string{"-redis-username", "alice"}, pingOK: true},
		{name: "wrong password", env: map[string]string{"REDIS_USERNAME": "alice", "REDIS_PASSWORD": "nope"}},
		{name: "no credentials"},
		{name: "env and file", env: map[string]string{"REDIS_PASSWORD": "s3cret"}, args: []string{"-redis-password-file", "FILE:x"}, wantErr: "both set"},
		{name: "missing file", args: []string{"-redis-password-file", "/nonexistent/pw"}, wantErr: "redis-password-file"},
		{name: "user without password", args: []string{"-redis-username", "alice"}, wantErr: "no password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, v := range []string{"REDIS_USERNAME", "REDIS_PASSWORD"} {
				t.Setenv(v, tc.env[v])
			}
			args := slices.Clone(tc.args)
			for i, a := range args {
				if c, ok := strings.CutPrefix(a, "FILE:"); ok {
					args[i] = writeFile(t, c)
				}
			}
			r, _ := parse(t, args...)
			o, err := r.Options([]string{mr.Addr()})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Options: err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := ping(o); (err == nil) != tc.pingOK {
				t.Errorf("ping: err = %v, want ok = %v", err, tc.pingOK)
			}
		})
	}
}

func TestRedisTLS(t *testing.T) {
	pki := newPKI(t)
	mr := miniredis.NewMiniRedis()
	if err := mr.StartTLS(&tls.Config{Certificates: []tls.Certificate{pki.server}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mr.Close)
	mr.RequireAuth("pw")
	t.Setenv("REDIS_PASSWORD", "pw")

	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string // from Options
		pingOK  bool
	}{
		{name: "CA file", args: []string{"-redis-tls", "-redis-ca-file", pki.caFile}, pingOK: true},
		{name: "CA file and server name", args: []string{"-redis-tls", "-redis-ca-file", pki.caFile, "-redis-tls-server-name", "localhost"}, pingOK: true},
		{name: "wrong server name", args: []string{"-redis-tls", "-redis-ca-file", pki.caFile, "-redis-tls-server-name", "redis.example"}},
		{name: "system roots do not know the CA", args: []string{"-redis-tls"}},
		{name: "insecure skip verify", args: []string{"-redis-tls", "-redis-tls-insecure-skip-verify"}, pingOK: true},
		{name: "plaintext to a TLS server", args: nil},
		{name: "CA file without TLS", args: []string{"-redis-ca-file", pki.caFile}, wantErr: "TLS is not enabled"},
		{name: "bad CA file", args: []string{"-redis-tls", "-redis-ca-file", writeFile(t, "not a certificate")}, wantErr: "no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := parse(t, tc.args...)
			o, err := r.Options([]string{mr.Addr()})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Options: err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			o.DialTimeout, o.ReadTimeout, o.MaxRetries = time.Second, time.Second, -1
			if err := ping(o); (err == nil) != tc.pingOK {
				t.Errorf("ping: err = %v, want ok = %v", err, tc.pingOK)
			}
		})
	}
	r, _ := parse(t, "-redis-tls", "-redis-tls-insecure-skip-verify")
	if len(r.Warnings()) != 1 {
		t.Errorf("insecure-skip-verify: warnings %q", r.Warnings())
	}
}

// TestSecretsNeverPrinted dumps the configurations every way a log line or
// a debugging session might.
func TestSecretsNeverPrinted(t *testing.T) {
	t.Setenv("REDIS_PASSWORD", "redis-pw-123")
	t.Setenv("REDIS_SENTINEL_PASSWORD", "sentinel-pw-123")
	t.Setenv("KAFKA_PASSWORD", "kafka-pw-123")
	r, k := parse(t, "-kafka-sasl-mechanism", "PLAIN", "-kafka-username", "u")
	if string(r.Password) != "redis-pw-123" || string(k.Password) != "kafka-pw-123" {
		t.Fatal("passwords not read from the environment")
	}
	var out bytes.Buffer
	for _, v := range []any{r, k, *r, *k} {
		fmt.Fprintf(&out, "%v %+v %#v %s %q\n", v, v, v, v, v)
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		out.Write(b)
	}
	slog.New(slog.NewTextHandler(&out, nil)).Info("config", "redis", r, "kafka", k, "pw", r.Password)
	slog.New(slog.NewJSONHandler(&out, nil)).Info("config", "redis", r, "kafka", k, "pw", k.Password)
	if s := out.String(); strings.Contains(s, "-pw-123") {
		t.Errorf("a password was printed:\n%s", s)
	}
}

func TestKafkaValidation(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string
		sasl    string // mechanism name, "" = none
		tls     bool
	}{
		{name: "defaults"},
		{name: "scram from env", env: map[string]string{"KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "KAFKA_USERNAME": "u", "KAFKA_PASSWORD": "p"}, sasl: "SCRAM-SHA-512"},
		{name: "plain over TLS", args: []string{"-kafka-sasl-mechanism", "plain", "-kafka-username", "u", "-kafka-tls"}, env: map[string]string{"KAFKA_PASSWORD": "p"}, sasl: "PLAIN", tls: true},
		{name: "TLS from env", env: map[string]string{"KAFKA_TLS": "true"}, tls: true},
		{name: "unknown mechanism", args: []string{"-kafka-sasl-mechanism", "OAUTHBEARER", "-kafka-username", "u"}, wantErr: "unknown SASL mechanism"},
		{name: "mechanism without user", args: []string{"-kafka-sasl-mechanism", "PLAIN"}, wantErr: "needs a username"},
		{name: "password without mechanism", env: map[string]string{"KAFKA_PASSWORD": "p"}, wantErr: "no SASL mechanism"},
		{name: "zero partitions", env: map[string]string{"KAFKA_TOPIC_PARTITIONS": "0"}, wantErr: "at least 1"},
		{name: "zero replication", args: []string{"-replication-factor", "0"}, wantErr: "at least 1"},
		{name: "server name without TLS", env: map[string]string{"KAFKA_TLS_SERVER_NAME": "kafka"}, wantErr: "TLS is not enabled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, v := range []string{"KAFKA_SASL_MECHANISM", "KAFKA_USERNAME", "KAFKA_PASSWORD", "KAFKA_TLS", "KAFKA_TOPIC_PARTITIONS", "KAFKA_TLS_SERVER_NAME"} {
				t.Setenv(v, tc.env[v])
			}
			_, k := parse(t, tc.args...)
			sec, err := k.Security()
			if _, _, terr := k.Topics(); err == nil {
				err = terr
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Security: err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if name := ""; sec.SASL != nil {
				name = sec.SASL.Name()
				if name != tc.sasl {
					t.Errorf("SASL %q, want %q", name, tc.sasl)
				}
			} else if tc.sasl != "" {
				t.Errorf("no SASL, want %s", tc.sasl)
			}
			if (sec.TLS != nil) != tc.tls {
				t.Errorf("TLS %v, want %v", sec.TLS != nil, tc.tls)
			}
		})
	}
}

func TestKafkaTopicSettings(t *testing.T) {
	t.Setenv("NOVAREC_PARTITIONS", "9")
	t.Setenv("KAFKA_TOPIC_PARTITIONS", "")
	t.Setenv("KAFKA_REPLICATION_FACTOR", "3")
	if _, k := parse(t); k.Partitions != 9 || k.Replication != 3 {
		t.Errorf("partitions %d replication %d, want 9 (old NOVAREC_PARTITIONS) and 3", k.Partitions, k.Replication)
	}
	t.Setenv("KAFKA_TOPIC_PARTITIONS", "12")
	if _, k := parse(t); k.Partitions != 12 {
		t.Errorf("partitions %d, want KAFKA_TOPIC_PARTITIONS over NOVAREC_PARTITIONS", k.Partitions)
	}
	if _, k := parse(t, "-partitions", "2"); k.Partitions != 2 {
		t.Errorf("partitions %d, want the flag's 2", k.Partitions)
	}
}

// TestKafkaTLSAndSASL connects the real clients, configured from flags,
// to a cluster that requires SCRAM over TLS.
func TestKafkaTLSAndSASL(t *testing.T) {
	pki := newPKI(t)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(),
		kfake.Superuser(events.SASLScramSHA256, "novarec", "kafka-secret"),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{pki.server}}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	brokers := c.ListenAddrs()
	t.Setenv("KAFKA_PASSWORD", "kafka-secret")
	base := []string{"-kafka-sasl-mechanism", "SCRAM-SHA-256", "-kafka-username", "novarec", "-kafka-tls", "-partitions", "1"}

	for _, tc := range []struct {
		name string
		args []string
		ok   bool
	}{
		{"CA file", []string{"-kafka-ca-file", pki.caFile}, true},
		{"unknown CA", nil, false},
		{"wrong server name", []string{"-kafka-ca-file", pki.caFile, "-kafka-tls-server-name", "kafka.example"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, k := parse(t, append(slices.Clone(base), tc.args...)...)
			sec, err := k.Security()
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = events.EnsureTopics(ctx, brokers, sec, k.Partitions, k.Replication, "rec.tls")
			if !tc.ok {
				var uerr x509.UnknownAuthorityError
				var herr x509.HostnameError
				if !errors.As(err, &uerr) && !errors.As(err, &herr) {
					t.Errorf("EnsureTopics: err = %v, want a certificate verification error", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("EnsureTopics: %v", err)
			}
			p := events.NewProducer(brokers, events.ProducerOptions{Security: sec, Logger: slog.New(slog.DiscardHandler)})
			defer p.Close(context.Background())
			if err := p.Produce(ctx, "rec.tls", "k", []byte("v")); err != nil {
				t.Fatalf("Produce over TLS+SCRAM: %v", err)
			}
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: "rec.tls", MaxWait: 100 * time.Millisecond, Dialer: &kafka.Dialer{SASLMechanism: sec.SASL, TLS: sec.TLS}})
			defer r.Close()
			m, err := r.ReadMessage(ctx)
			if err != nil || string(m.Value) != "v" {
				t.Errorf("read back %q, %v", m.Value, err)
			}
		})
	}
}

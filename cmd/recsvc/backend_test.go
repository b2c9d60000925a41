package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/novarec/novarec/api"
	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/internal/backend"
)

func TestParseConfigBackends(t *testing.T) {
	t.Setenv("REDIS_ADDR", "s1:26379,s2:26379")
	t.Setenv("KAFKA_BROKERS", "k0:9092")
	t.Setenv("REDIS_MASTER_NAME", "mymaster")
	t.Setenv("REDIS_PASSWORD", "redis-pw-secret")
	t.Setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
	t.Setenv("KAFKA_USERNAME", "novarec")
	t.Setenv("KAFKA_PASSWORD", "kafka-pw-secret")
	t.Setenv("KAFKA_REPLICATION_FACTOR", "3")
	t.Setenv("NOVAREC_MAX_INFLIGHT", "")
	c, err := parseConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.maxInflight != api.DefaultMaxInflight || c.replication != 3 || c.partitions != 6 {
		t.Errorf("max-inflight %d, replication %d, partitions %d; want %d, 3, 6", c.maxInflight, c.replication, c.partitions, api.DefaultMaxInflight)
	}
	o, err := c.redisConn.Options(c.redisAddrs)
	if err != nil {
		t.Fatal(err)
	}
	if cl, ok := redis.NewUniversalClient(o).(*redis.Client); !ok || cl.Options().Addr != "FailoverClient" {
		t.Errorf("REDIS_MASTER_NAME did not give a failover client")
	}
	sec, err := c.kafkaConn.Security()
	if err != nil || sec.SASL == nil || sec.SASL.Name() != "SCRAM-SHA-512" {
		t.Errorf("kafka security %v, %v", sec, err)
	}
	if s := fmt.Sprintf("%+v %#v", c, c); strings.Contains(s, "pw-secret") {
		t.Errorf("the config prints a password: %s", s)
	}

	t.Setenv("NOVAREC_MAX_INFLIGHT", "64")
	t.Setenv("NOVAREC_INTENT_EPSILON", "0.05")
	if c, err := parseConfig(nil); err != nil || c.maxInflight != 64 || c.intentEpsilon != 0.05 {
		t.Errorf("NOVAREC_MAX_INFLIGHT=64, NOVAREC_INTENT_EPSILON=0.05: %d, %v, %v", c.maxInflight, c.intentEpsilon, err)
	}
	for _, args := range [][]string{
		{"-max-inflight", "-1"},
		{"-intent-epsilon", "1.5"},
		{"-intent-epsilon", "-0.1"},
		{"-hedge", "-1"},
		{"-hedge", "NaN"},
		{"-kafka-sasl-mechanism", "GSSAPI"},
		{"-replication-factor", "0"},
		{"-redis-ca-file", "/x.pem"}, // without -redis-tls
	} {
		if _, err := parseConfig(args); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

// TestKafkaSASLAtStart runs recsvc against a cluster that requires SCRAM:
// with the right password it creates the topics and its impressions reach
// Kafka; with a wrong one it refuses to start and says why, instead of
// serving while every event is dropped.
func TestKafkaSASLAtStart(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser(events.SASLScramSHA256, "novarec", "right"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	brokers := c.ListenAddrs()
	conn := func(pw string) *backend.Kafka {
		return &backend.Kafka{SASLMechanism: events.SASLScramSHA256, Username: "novarec", Password: backend.Secret(pw)}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = run(ctx, config{addr: "127.0.0.1:0", kafka: brokers, kafkaConn: conn("wrong"), partitions: 1, replication: 1, insecureOpen: true,
		updater: "off", trainer: "off", drain: time.Second}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err == nil || !events.IsAuthFailure(err) {
		t.Fatalf("recsvc with a wrong Kafka password: %v, want an authentication failure", err)
	}

	s := start(t, config{kafka: brokers, kafkaConn: conn("right"), partitions: 1, replication: 1, sampleItems: 200,
		updater: "off", trainer: "off", drain: 3 * time.Second})
	resp, err := http.Post(s.base+"/v1/recommend", "application/json", strings.NewReader(`{"user_id":"sasl-user","k":3}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("recommend: %d", resp.StatusCode)
	}
	sec, err := conn("right").Security()
	if err != nil {
		t.Fatal(err)
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: events.TopicImpressions, MaxWait: 100 * time.Millisecond,
		Dialer: &kafka.Dialer{SASLMechanism: sec.SASL}})
	defer r.Close()
	m, err := r.ReadMessage(ctx)
	if err != nil {
		t.Fatalf("no impression reached the SASL cluster: %v", err)
	}
	if !strings.Contains(string(m.Value), "sasl-user") {
		t.Errorf("impression %s", m.Value)
	}
}

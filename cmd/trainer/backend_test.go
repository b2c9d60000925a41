package main

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseConfigBackends(t *testing.T) {
	t.Setenv("REDIS_ADDR", "r:6379")
	t.Setenv("KAFKA_BROKERS", "k:9092")
	t.Setenv("REDIS_USERNAME", "novarec")
	t.Setenv("REDIS_PASSWORD", "redis-pw-secret")
	t.Setenv("KAFKA_SASL_MECHANISM", "PLAIN")
	t.Setenv("KAFKA_USERNAME", "novarec")
	t.Setenv("KAFKA_PASSWORD", "kafka-pw-secret")
	t.Setenv("KAFKA_TLS", "true")
	t.Setenv("KAFKA_TOPIC_PARTITIONS", "12")
	t.Setenv("KAFKA_REPLICATION_FACTOR", "3")
	c, err := parseConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.partitions != 12 || c.replication != 3 {
		t.Errorf("partitions %d replication %d, want 12 and 3", c.partitions, c.replication)
	}
	o, err := c.redisConn.Options(c.redisAddrs)
	if err != nil || o.Username != "novarec" || o.Password != "redis-pw-secret" {
		t.Errorf("redis options: user %q, password set %v, %v", o.Username, o.Password != "", err)
	}
	sec, err := c.kafkaConn.Security()
	if err != nil || sec.SASL == nil || sec.SASL.Name() != "PLAIN" || sec.TLS == nil {
		t.Errorf("kafka security: %v", err)
	}
	if s := fmt.Sprintf("%+v %#v", c, c); strings.Contains(s, "pw-secret") {
		t.Errorf("the config prints a password: %s", s)
	}
	for _, args := range [][]string{
		{"-kafka-sasl-mechanism", "GSSAPI"},
		{"-partitions", "0"},
		{"-redis-password-file", "/nonexistent"},
	} {
		if _, err := parseConfig(args); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

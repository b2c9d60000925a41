package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/novarec/novarec/apikey"
	"github.com/novarec/novarec/internal/envflag"
)

// adminTokenKeyID is the id under which NOVAREC_ADMIN_TOKEN, from before
// there were API keys, still works as an admin-scoped key.
const adminTokenKeyID = "admin-token"

// keyFlags registers the API key flags on fs; the returned function checks
// them once fs is parsed.
func (c *config) keyFlags(fs *flag.FlagSet) func() error {
	fs.StringVar(&c.apiKeys, "api-keys", envflag.String("NOVAREC_API_KEYS", ""), "API keys file: one \"ID SCOPES sha256:HASH\" per line, reloaded when it changes and on SIGHUP; see docs/security.md (env NOVAREC_API_KEYS)")
	fs.BoolVar(&c.insecureOpen, "insecure-open", false, "serve without API keys although real Redis/Kafka servers are configured: anyone who reaches the port may read and write everything but the admin routes")
	limits := fs.String("rate-limits", envflag.String("NOVAREC_RATE_LIMITS", ""), "per-key rate limits as scope=RATE[:BURST] or scope=off, comma-separated, over the defaults "+apikey.DefaultLimits().String()+" (env NOVAREC_RATE_LIMITS)")
	c.adminToken = os.Getenv("NOVAREC_ADMIN_TOKEN")
	c.keysPoll = apikey.DefaultPoll
	return func() (err error) {
		if c.apiKeys != "" && c.insecureOpen {
			return errors.New("-insecure-open and -api-keys exclude each other")
		}
		c.rateLimits, err = apikey.ParseLimits(*limits)
		return err
	}
}

// openKeys returns the keyring recsvc serves with, or refuses to serve
// with real servers and no keys unless -insecure-open says so. It runs
// before anything is started, so that a refusal is immediate.
func openKeys(cfg config, reg prometheus.Registerer, log *slog.Logger) (*apikey.Keyring, error) {
	realServers := len(cfg.redisAddrs) > 0 || len(cfg.kafka) > 0
	if realServers && cfg.apiKeys == "" && !cfg.insecureOpen {
		return nil, errors.New("real Redis or Kafka servers are configured but no API keys: set -api-keys FILE (NOVAREC_API_KEYS; docs/security.md), " +
			"or pass -insecure-open to let anyone who reaches the port use the service (NOVAREC_ADMIN_TOKEN alone guards only the admin routes)")
	}
	opts := apikey.Options{Path: cfg.apiKeys, Open: cfg.apiKeys == "", Limits: cfg.rateLimits, Registerer: reg, Logger: log}
	if cfg.adminToken != "" {
		opts.Extra = append(opts.Extra, apikey.NewKey(adminTokenKeyID, cfg.adminToken, apikey.Admin))
		log.Warn("NOVAREC_ADMIN_TOKEN works as the admin-scoped API key " + adminTokenKeyID + " for compatibility; prefer an admin key in the keys file (docs/security.md)")
	}
	keys, err := apikey.New(opts)
	if err != nil {
		return nil, err
	}
	switch {
	case cfg.apiKeys != "":
		if err := keys.Reload("start"); err != nil {
			return nil, err
		}
		log.Info("API keys in force", "keys", keys.Len(), "file", cfg.apiKeys, "rate_limits", cfg.rateLimits.String())
	case cfg.insecureOpen:
		log.Warn("-insecure-open: serving without API keys; anyone who reaches the port may read and write everything but the admin routes")
	default:
		log.Warn("embedded mode without API keys: every route but the admin ones is open to anyone who reaches the port; set -api-keys FILE to require keys")
	}
	return keys, nil
}

// watchKeys returns the loop that reloads the keys file; SIGHUP is caught
// from now on (not when the loop starts, so that a SIGHUP right after
// start does not kill the process), and only when there is a keys file.
func watchKeys(keys *apikey.Keyring, cfg config) func(context.Context) {
	hup := make(chan os.Signal, 1)
	if cfg.apiKeys != "" {
		signal.Notify(hup, syscall.SIGHUP)
	}
	poll := cfg.keysPoll
	if poll <= 0 {
		poll = apikey.DefaultPoll
	}
	return func(ctx context.Context) {
		defer signal.Stop(hup)
		keys.Run(ctx, poll, hup)
	}
}

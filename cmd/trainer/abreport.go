package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/redis/go-redis/v9"

	"github.com/novarec/novarec/experiment"
	"github.com/novarec/novarec/features"
	"github.com/novarec/novarec/internal/backend"
	"github.com/novarec/novarec/internal/envflag"
)

// abReportMain prints the A/B report of an experiment from the aggregates
// its trainers keep in Redis: `trainer ab-report -experiments FILE`.
func abReportMain(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("ab-report", flag.ContinueOnError)
	file := fs.String("experiments", envflag.String("NOVAREC_EXPERIMENTS", ""), "the experiments file (env NOVAREC_EXPERIMENTS)")
	redisAddr := fs.String("redis", envflag.String("REDIS_ADDR", ""), "Redis address(es) (env REDIS_ADDR)")
	redisConn := backend.RedisFlags(fs)
	prefix := fs.String("prefix", envflag.String("NOVAREC_PREFIX", "nr:"), "Redis key prefix (env NOVAREC_PREFIX)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *file == "" || *redisAddr == "" {
		return errors.New("-experiments and REDIS_ADDR (or -redis) are required")
	}
	exp, err := experiment.Load(*file)
	if err != nil {
		return err
	}
	opts, err := redisConn.Options(envflag.List(*redisAddr))
	if err != nil {
		return err
	}
	rdb := redis.NewUniversalClient(opts)
	defer rdb.Close()
	r, err := features.NewStore(rdb, features.Options{Prefix: *prefix}).Report(ctx, exp)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	return printReport(stdout, r)
}

// printReport renders a report as a table: one row per variant and metric.
func printReport(w io.Writer, r experiment.Report) error {
	fmt.Fprintf(w, "experiment %s (control %s)\n\n", r.Experiment, r.Control)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "variant\tmetric\tvalue\t95% CI\tlift\tp\tp adj.")
	for _, v := range r.Variants {
		for _, m := range v.Metrics {
			lift, p, adj := "", "", ""
			if m.Lift != nil {
				lift = fmt.Sprintf("%+.1f%%", 100**m.Lift)
			}
			if m.PValue != nil {
				p = fmt.Sprintf("%.3g", *m.PValue)
			}
			if m.PAdjusted != nil {
				adj = fmt.Sprintf("%.3g", *m.PAdjusted)
			}
			fmt.Fprintf(tw, "%s\t%s\t%.4g\t[%.4g, %.4g]\t%s\t%s\t%s\n", v.Name, m.Name, m.Value, m.Low, m.High, lift, p, adj)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nsample ratio check: chi-square %.3g, p %.3g", r.SRM.ChiSquare, r.SRM.PValue)
	if r.SRM.Mismatch {
		fmt.Fprint(w, " — MISMATCH")
	}
	fmt.Fprintln(w)
	for _, n := range r.Notes {
		fmt.Fprintln(w, "note:", n)
	}
	return nil
}

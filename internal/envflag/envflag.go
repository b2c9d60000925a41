// Package envflag holds the small helpers recsvc and the trainer share to
// take flag defaults from the environment, so both commands read the same
// variables the same way.
package envflag

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// String returns the variable's value, or def when it is unset.
func String(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

// Int returns the variable as an integer, or def when it is unset or not one.
func Int(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// Float returns the variable as a float, or def when it is unset or not one.
func Float(name string, def float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(name), 64); err == nil {
		return v
	}
	return def
}

// List splits a comma-separated list, dropping blanks and empty entries.
func List(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Bool returns the variable as a boolean (strconv.ParseBool: 1, t, true,
// 0, f, false, ...), or def when it is unset or not one.
func Bool(name string, def bool) bool {
	if v, err := strconv.ParseBool(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// Duration returns the variable as a time.Duration ("2s", "150ms"), or def
// when it is unset or not one.
func Duration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

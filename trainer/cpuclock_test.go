package trainer

import (
	"os"
	"runtime/pprof"
	"testing"
)

// timedProfile starts a CPU profile of only the timed part of a benchmark
// when NOVAREC_BENCH_CPUPROFILE names a file (go test's -cpuprofile also
// covers producing the stream, which dwarfs the trainer); the returned
// function stops it.
func timedProfile(b *testing.B) func() {
	path := os.Getenv("NOVAREC_BENCH_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Error(err)
		}
	}
}

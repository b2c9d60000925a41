package trainer

import (
	"os"
	"runtime/pprof"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's CPU time so far (user + system, all threads).
// Benchmarks report events per CPU-second besides events per wall second:
// on a machine other jobs load, wall time stretches with their load while
// the process's own CPU time barely does.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

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

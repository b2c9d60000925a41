package logtest

import (
	"sync"
	"testing"
)

func TestBuffer(t *testing.T) {
	b, log := New()
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				log.Info("audit", "i", i, "j", j)
				log.Info("other")
			}
		}()
	}
	wg.Wait()
	if got := len(b.Lines(t, "audit")); got != 200 {
		t.Fatalf("%d audit lines, want 200", got)
	}
	if got := len(b.Lines(t, "other")); got != 200 {
		t.Fatalf("%d other lines, want 200", got)
	}
}

package main

import (
	"context"
	"os"
	"strings"
	"testing"
)

func TestZZRunSimulate(t *testing.T) {
	args := os.Getenv("SIMARGS")
	if args == "" {
		t.Skip()
	}
	if err := simulateMain(context.Background(), strings.Fields(args), os.Stdout); err != nil {
		t.Fatal(err)
	}
}

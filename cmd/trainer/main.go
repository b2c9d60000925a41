// Command trainer will run novarec's learning loop: consume rec.impressions
// and rec.feedback, update both levels of the policy and publish model
// snapshots that recsvc hot-swaps. Until then the feature updater runs
// inside recsvc (-feature-updater, on by default).
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "trainer: not built yet; recsvc runs the feature updater in-process (see README, Roadmap)")
	os.Exit(2)
}

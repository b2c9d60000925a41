package trainer

import (
	"encoding/binary"
	"time"

	"github.com/novarec/novarec/features"
)

// Replicas publish on the variant's cadence, not after every commit
// (docs/trainer-scale.md#scaling-out). A snapshot is the whole model
// (15.6 MB at 100,000 learned items) and every recsvc replica downloads and
// decodes each one, so n replicas publishing after each of their commits
// would write n snapshots per commit interval, growing with the replicas
// and not with what changed. Instead a commit claims the variant's next
// snapshot, in its transaction, only when PublishEvery has passed since the
// last claim (of any replica) and the shared model has merges no claimed
// snapshot holds; the claiming replica publishes after its commit, so the
// variant gets at most one snapshot per PublishEvery however many replicas
// commit, as a single owner does. A snapshot holds every merge up to its
// version (the publisher has just rebased on the shared model), so
// unclaimed merges reach serving with the next claim: the first commit
// after PublishEvery of a replica that learned something, or of the
// replica whose merge is unpublished even if idle (an empty claim), or its
// stop — within PublishEvery and one commit interval.

// hashPublish is the shared part's hash holding the last claim.
const hashPublish = "publish"

// fieldLastClaim is hashPublish's one field.
const fieldLastClaim = "last"

// publishClaim is the record of the last claim: the shared model's version
// it claimed (that commit's merge) and when (Unix ms).
type publishClaim struct {
	version uint64
	atMS    int64
}

func appendPublishClaim(b []byte, c publishClaim) []byte {
	b = append(b, recordV1)
	b = binary.AppendVarint(b, int64(c.version))
	return binary.AppendVarint(b, c.atMS)
}

func readPublishClaim(b []byte) (publishClaim, error) {
	r := &reader{b: b}
	r.version(recordV1)
	c := publishClaim{version: uint64(r.varint()), atMS: r.varint()}
	return c, r.done()
}

// lastClaim reads the last claim in a commit's transaction; none (or an
// unreadable one, which the next claim overwrites) reads as the zero
// claim, long past.
func lastClaim(get features.SharedFields) (publishClaim, error) {
	vals, err := get(hashPublish, fieldLastClaim)
	if err != nil || len(vals) == 0 || vals[0] == nil {
		return publishClaim{}, err
	}
	c, err := readPublishClaim(vals[0])
	if err != nil {
		return publishClaim{}, nil
	}
	return c, nil
}

// publishGap is the shortest time between two claims: PublishEvery, and
// ten times the last publish's duration so that publishing a large model
// takes at most ~10% of a replica's time.
func (t *Trainer) publishGap() time.Duration {
	return max(t.cfg.PublishEvery, 10*t.publishTook)
}

// claimDue says whether a commit that would store version next on a shared
// model whose last claim is last claims the next snapshot at now: when
// there is something no claimed snapshot holds (this commit's merge, if it
// merges anything, or an earlier unclaimed one: stored > last.version) and
// the gap has passed since the last claim, or the replica is stopping.
func claimDue(last publishClaim, stored uint64, merges bool, now time.Time, gap time.Duration, final bool) bool {
	if !merges && stored <= last.version {
		return false
	}
	return final || now.Sub(time.UnixMilli(last.atMS)) >= gap
}

package events

import (
	"slices"

	"github.com/segmentio/kafka-go"
)

// partitionRange assigns partition N of every topic to the same member: the
// members, ordered by id, take contiguous ranges of the partition numbers.
// Consumers that join two topics keyed alike (the trainer: an impression,
// its feedback and its session's decisions are all on partition N of their
// topics) need that. kafka-go's RangeGroupBalancer splits each topic's
// partitions in the order the broker listed them, which is not always by
// number (the embedded broker lists them in map order), so partition 3 of
// one topic could go to one member and partition 3 of the other to another.
//
// Its protocol name is its own, listed before kafka-go's range and
// round-robin: a group whose members all run this build uses it, and one
// that still has older members falls back to range.
type partitionRange struct{}

func (partitionRange) ProtocolName() string      { return "novarec-range" }
func (partitionRange) UserData() ([]byte, error) { return nil, nil }

func (partitionRange) AssignGroups(members []kafka.GroupMember, partitions []kafka.Partition) kafka.GroupMemberAssignments {
	out := kafka.GroupMemberAssignments{}
	byTopic := map[string][]string{} // topic → ids of the members that read it
	for _, m := range members {
		out[m.ID] = map[string][]int{}
		for _, t := range m.Topics {
			byTopic[t] = append(byTopic[t], m.ID)
		}
	}
	ids := map[string][]int{} // topic → partition numbers
	for _, p := range partitions {
		ids[p.Topic] = append(ids[p.Topic], p.ID)
	}
	for topic, ms := range byTopic {
		slices.Sort(ms)
		ps := ids[topic]
		slices.Sort(ps)
		for i, p := range ps {
			m := ms[i*len(ms)/len(ps)]
			out[m][topic] = append(out[m][topic], p)
		}
	}
	return out
}

// balancers are the group protocols consumers offer, preferred first.
var balancers = []kafka.GroupBalancer{partitionRange{}, kafka.RangeGroupBalancer{}, kafka.RoundRobinGroupBalancer{}}

package events

import (
	"reflect"
	"testing"

	"github.com/segmentio/kafka-go"
)

func TestPartitionRangeAssignsPartitionNAlike(t *testing.T) {
	members := []kafka.GroupMember{{ID: "m2", Topics: []string{"a", "b"}}, {ID: "m1", Topics: []string{"a", "b"}}}
	// Listed out of order, differently per topic, as a broker may.
	var parts []kafka.Partition
	for _, p := range []int{3, 0, 5, 1, 4, 2} {
		parts = append(parts, kafka.Partition{Topic: "a", ID: p})
	}
	for _, p := range []int{1, 4, 0, 2, 5, 3} {
		parts = append(parts, kafka.Partition{Topic: "b", ID: p})
	}
	got := partitionRange{}.AssignGroups(members, parts)
	want := kafka.GroupMemberAssignments{
		"m1": {"a": {0, 1, 2}, "b": {0, 1, 2}},
		"m2": {"a": {3, 4, 5}, "b": {3, 4, 5}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("assigned %v, want %v", got, want)
	}
	// No partitions: nobody gets any.
	got = partitionRange{}.AssignGroups(members, parts[:0:0])
	if len(got["m1"]) != 0 || len(got["m2"]) != 0 {
		t.Errorf("no partitions: assigned %v", got)
	}
}

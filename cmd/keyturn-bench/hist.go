package main

import (
	"math"
	"math/bits"
	"time"
)

// histogram records latencies in nanoseconds in log-linear buckets: values
// below 128 ns are exact; above, each power of two is split into 64 equal
// buckets, so a bucket is at most 1/64 (1.6 %) of its values wide. Memory
// is fixed (a few KiB) however long the run, and histograms merge by
// adding counts, so each worker keeps its own and nothing is locked.
type histogram struct {
	counts []uint64
	n      uint64
	sum    float64 // ns, for the mean
	min    int64
	max    int64
}

const (
	subBits   = 6            // 64 buckets per power of two
	subCount  = 1 << subBits // 64
	linearMax = 2 * subCount // values below this have a bucket each
	// maxValue caps what is recorded: 2^40 ns is over 18 minutes, longer
	// than any run may last.
	maxValue   = 1<<40 - 1
	maxBuckets = linearMax + (40-subBits-1)*subCount
)

func newHistogram() *histogram {
	return &histogram{counts: make([]uint64, maxBuckets), min: math.MaxInt64}
}

// bucketOf returns the bucket index of v (v >= 0).
func bucketOf(v int64) int {
	if v < linearMax {
		return int(v)
	}
	top := bits.Len64(uint64(v)) - 1 // position of the highest set bit, >= subBits+1
	shift := top - subBits           // keep subBits bits below the top one
	sub := int(uint64(v)>>shift) - subCount
	return linearMax + (top-subBits-1)*subCount + sub
}

// bucketHigh is the largest value that falls in bucket i.
func bucketHigh(i int) int64 {
	if i < linearMax {
		return int64(i)
	}
	j := i - linearMax
	top := j/subCount + subBits + 1
	sub := int64(j%subCount + subCount)
	shift := top - subBits
	return (sub+1)<<shift - 1
}

// record adds one latency.
func (h *histogram) record(d time.Duration) {
	v := int64(d)
	v = min(max(v, 0), maxValue)
	h.counts[bucketOf(v)]++
	h.n++
	h.sum += float64(v)
	h.min = min(h.min, v)
	h.max = max(h.max, v)
}

// merge adds o's samples to h.
func (h *histogram) merge(o *histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
}

// percentile returns the nearest-rank p-th percentile (0 < p <= 100): the
// smallest recorded value such that at least p % of the samples are less
// than or equal to it, rounded up to its bucket's highest value (so it
// never understates a latency) and clamped to the recorded range. Zero for
// an empty histogram.
func (h *histogram) percentile(p float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(p / 100 * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(max(bucketHigh(i), h.min), h.max))
		}
	}
	return time.Duration(h.max)
}

// mean is the exact mean latency.
func (h *histogram) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}

func (h *histogram) maximum() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.max)
}

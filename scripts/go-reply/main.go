// go-reply: the reply-channel ping-pong (Go's request/response idiom, and
// the shape of the Rust anchor's tokio `pingpong_oneshot`): every message
// carries a fresh `make(chan msg, 1)` for its reply, so each round trip
// makes two channels and uses each once. The Go half of gort's
// `benches/sched.rs --case chan_pingpong --shape reply`; the anchor suite
// has no such case, so scripts/bench-vs-go.sh builds this with the
// anchor's Go toolchain. One warm-up at n/10, then -reps timed runs;
// prints the median as
// RESULT pingpong_chan_ns_per_roundtrip[procs=<P>,shape=reply] <ns> ns
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"
)

type msg struct {
	v     int
	reply chan msg
}

func roundTrips(n int) float64 {
	first := make(chan msg, 1)
	done := make(chan struct{})
	go func() {
		rx := first
		for {
			m, ok := <-rx
			if !ok {
				break
			}
			next := make(chan msg, 1)
			m.reply <- msg{m.v + 1, next}
			rx = next
		}
		close(done)
	}()
	t0 := time.Now()
	to := first
	v := 0
	for i := 0; i < n; i++ {
		rx := make(chan msg, 1)
		to <- msg{v, rx}
		m := <-rx
		v, to = m.v, m.reply
	}
	el := time.Since(t0)
	close(to)
	<-done
	if v != n {
		fmt.Fprintf(os.Stderr, "CHECK FAILED: value %d, want %d\n", v, n)
		os.Exit(1)
	}
	return float64(el.Nanoseconds()) / float64(n)
}

func main() {
	n := flag.Int("n", 1000000, "round trips per run")
	reps := flag.Int("reps", 5, "timed runs")
	flag.Parse()
	roundTrips(*n / 10)
	xs := make([]float64, *reps)
	s := make([]string, *reps)
	for i := range xs {
		xs[i] = roundTrips(*n)
		s[i] = fmt.Sprintf("%.1f", xs[i])
	}
	fmt.Printf("# reply pingpong procs=%d reps (ns/roundtrip): %s\n", runtime.GOMAXPROCS(0), strings.Join(s, " "))
	sort.Float64s(xs)
	fmt.Printf("RESULT pingpong_chan_ns_per_roundtrip[procs=%d,shape=reply] %.2f ns\n", runtime.GOMAXPROCS(0), xs[len(xs)/2])
}

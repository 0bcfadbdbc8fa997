// go-select: Go's four select benchmarks from runtime/chan_test.go
// (BenchmarkSelectUncontended, BenchmarkSelectSyncContended,
// BenchmarkSelectAsyncContended, BenchmarkSelectNonblock) as a standalone
// program in the Go anchor's style, the Go half of gort's
// `benches/sched.rs --case select`. The anchor suite has no select case;
// scripts/bench-vs-go.sh builds this with the anchor's Go toolchain.
//
// RunParallel's shape: GOMAXPROCS workers, ops/GOMAXPROCS iterations each;
// the figure is wall time / total iterations (ns). One warm-up at ops/10,
// then -reps timed runs; prints the median as
// RESULT select_ns_per_op[shape=<shape>,procs=<P>] <ns> ns
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"
)

func bounce(c1, c2 chan int, n int) {
	for i := 0; i < n; i++ {
		select {
		case v := <-c1:
			c2 <- v
		case v := <-c2:
			c1 <- v
		}
	}
}

func run(shape string, procs, ops int) float64 {
	per := ops / procs
	var wg sync.WaitGroup
	wg.Add(procs)
	var t0 time.Time
	switch shape {
	case "uncontended":
		left := make([]int, procs)
		t0 = time.Now()
		for w := 0; w < procs; w++ {
			go func(w int) {
				defer wg.Done()
				c1, c2 := make(chan int, 1), make(chan int, 1)
				c1 <- 0
				bounce(c1, c2, per)
				left[w] = len(c1) + len(c2)
			}(w)
		}
		wg.Wait()
		for _, l := range left {
			if l != 1 {
				panic("select uncontended: one value")
			}
		}
	case "async_contended":
		c1, c2 := make(chan int, procs), make(chan int, procs)
		t0 = time.Now()
		for w := 0; w < procs; w++ {
			go func() {
				defer wg.Done()
				c1 <- 0
				bounce(c1, c2, per)
			}()
		}
		wg.Wait()
		if len(c1)+len(c2) != procs {
			panic("select async_contended: procs values")
		}
	case "sync_contended":
		c1, c2, c3 := make(chan int), make(chan int), make(chan int)
		done := make(chan int)
		sent := make([]int, procs)
		var hg sync.WaitGroup
		hg.Add(procs)
		t0 = time.Now()
		for w := 0; w < procs; w++ {
			go func(w int) {
				defer hg.Done()
				for {
					select {
					case c1 <- 0:
					case c2 <- 0:
					case c3 <- 0:
					case <-done:
						return
					}
					sent[w]++
				}
			}(w)
			go func() {
				defer wg.Done()
				for i := 0; i < per; i++ {
					select {
					case <-c1:
					case <-c2:
					case <-c3:
					}
				}
			}()
		}
		wg.Wait()
		el := time.Since(t0)
		close(done)
		hg.Wait()
		total := 0
		for _, s := range sent {
			total += s
		}
		if total != per*procs {
			panic("select sync_contended: every send received")
		}
		return float64(el.Nanoseconds()) / float64(per*procs)
	case "nonblock":
		c1, c2 := make(chan int), make(chan int)
		c3, c4 := make(chan int, 1), make(chan int, 1)
		c4 <- 0
		defaults := make([]int, procs)
		t0 = time.Now()
		for w := 0; w < procs; w++ {
			go func(w int) {
				defer wg.Done()
				d := 0
				for i := 0; i < per; i++ {
					select {
					case <-c1:
					default:
						d++
					}
					select {
					case c2 <- 0:
					default:
						d++
					}
					select {
					case <-c3:
					default:
						d++
					}
					select {
					case c4 <- 0:
					default:
						d++
					}
				}
				defaults[w] = d
			}(w)
		}
		wg.Wait()
		for _, d := range defaults {
			if d != 4*per {
				panic("select nonblock: every case took default")
			}
		}
	default:
		fmt.Fprintf(os.Stderr, "unknown shape %q (uncontended, sync_contended, async_contended, nonblock)\n", shape)
		os.Exit(2)
	}
	return float64(time.Since(t0).Nanoseconds()) / float64(per*procs)
}

func main() {
	shapes := flag.String("shapes", "uncontended,sync_contended,async_contended,nonblock", "comma-separated shapes")
	ops := flag.Int("ops", 2000000, "iterations per repetition (split over GOMAXPROCS workers)")
	reps := flag.Int("reps", 5, "measured repetitions (after one warm-up)")
	flag.Parse()
	procs := runtime.GOMAXPROCS(0)
	for _, shape := range strings.Split(*shapes, ",") {
		run(shape, procs, *ops/10)
		xs := make([]float64, *reps)
		for i := range xs {
			xs[i] = run(shape, procs, *ops)
		}
		s := make([]string, len(xs))
		for i, x := range xs {
			s[i] = fmt.Sprintf("%.4f", x)
		}
		fmt.Printf("# select %s procs=%d reps (ns/op): %s\n", shape, procs, strings.Join(s, " "))
		sort.Float64s(xs)
		fmt.Printf("RESULT select_ns_per_op[shape=%s,procs=%d] %g ns\n", shape, procs, xs[len(xs)/2])
	}
}

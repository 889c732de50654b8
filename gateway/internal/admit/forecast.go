package admit

import "time"

// The forecast says when each admitted request's last image will finish if
// chains are granted the way dispatch grants them: round-robin over the
// flows from the one served next, FIFO within a flow, at most RequestChains
// of a request at once and MaxChains in all. Time runs in waves: a wave
// starts up to MaxChains chains, and each chain takes the measured average
// (chainSecs). The byte bound is left out: it stops a round only for
// images far larger than the usual ones.
//
// The model leaves out what happens outside the grants: a request's next
// image comes from the generator's stream, and a flow with no chain
// waiting when its turn comes loses that turn. So the forecast learns its
// own error: every request that finished records its real time over the
// forecast made when it was admitted, and forecasts are scaled by the
// moving average of that ratio (skew, 1 until measured).
//
// The older estimate, the whole backlog drained first-come-first-served,
// was wrong in both directions under round-robin: a small request behind
// a big one finishes long before the backlog drains, and a request
// admitted later takes turns from every request already running, which
// can then miss the deadline it was admitted with (the soak saw calls fail
// after their first image so).

// forecast returns, for every admitted request with images left and for
// extra (nil: none) joining flow f (nil: a flow of its own, placed last in
// the ring as Admit places it), how long from now until its last image
// finishes, by the model (expect scales it by the learnt error). Called
// with mu held; it costs O(backlog × flows).
func (c *Controller) forecast(extra *Ticket, f *flow) map[*Ticket]time.Duration {
	type pending struct {
		t      *Ticket
		left   int
		inWave int // chains started in the current wave
	}
	var queues [][]*pending // in the order dispatch serves the flows
	add := func(fl *flow) {
		var q []*pending
		for _, t := range fl.tickets {
			if t.left > 0 {
				q = append(q, &pending{t: t, left: t.left})
			}
		}
		if extra != nil && fl == f {
			q = append(q, &pending{t: extra, left: extra.left})
		}
		if len(q) > 0 {
			queues = append(queues, q)
		}
	}
	// dispatch serves c.ring[c.next] first; a c.next past the end (the
	// last flow was just served) means the next flow appended, else the
	// first.
	start := min(c.next, len(c.ring))
	for _, fl := range c.ring[start:] {
		add(fl)
	}
	if extra != nil && f == nil {
		f = &flow{}
		add(f) // appended to the ring: served after its last flow, before its first
	}
	for _, fl := range c.ring[:start] {
		add(fl)
	}

	finish := map[*Ticket]time.Duration{}
	wave := time.Duration(c.chainSecs * float64(time.Second))
	pos := 0
	for now := wave; len(queues) > 0; now += wave {
		for started := 0; started < c.cfg.MaxChains; {
			progress := false
			for range len(queues) {
				q := queues[pos%len(queues)]
				pos++
				for _, p := range q {
					if p.left > 0 && p.inWave < c.cfg.RequestChains {
						p.left--
						p.inWave++
						started++
						progress = true
						if p.left == 0 {
							finish[p.t] = now
						}
						break
					}
				}
				if started == c.cfg.MaxChains {
					break
				}
			}
			if !progress {
				break
			}
		}
		// Drop what finished; the next wave starts afresh, with the flow
		// that was to be served next.
		next := pos % len(queues)
		kept := queues[:0]
		pos = 0
		for i, q := range queues {
			live := q[:0]
			for _, p := range q {
				if p.left > 0 {
					p.inWave = 0
					live = append(live, p)
				}
			}
			if len(live) > 0 {
				kept = append(kept, live)
			} else if i < next {
				pos-- // a flow before the next one left
			}
		}
		queues = kept
		pos += next
	}
	return finish
}

// alone is how long n images take on an idle gateway by the same model.
func (c *Controller) alone(n int) time.Duration {
	per := min(c.cfg.RequestChains, c.cfg.MaxChains)
	waves := (n + per - 1) / per
	return time.Duration(waves) * time.Duration(c.chainSecs*float64(time.Second))
}

// expect is how long the model's d takes in fact: d scaled by the
// forecast's learnt error, skew (1 before any request finished with a
// forecast).
func (c *Controller) expect(d time.Duration) time.Duration {
	if c.skew == 0 {
		return d
	}
	return time.Duration(float64(d) * c.skew)
}

// learn folds one finished request into skew: took is its real time,
// forecast the unscaled forecast made at its admission. The ratio is
// clamped to [0.25, 16] so that one stalled request cannot turn the
// gateway away for long; the average runs over about the last 32.
func (c *Controller) learn(took, forecast time.Duration) {
	r := min(max(float64(took)/float64(forecast), 0.25), 16)
	if c.skew == 0 {
		c.skew = r
	} else {
		c.skew += (r - c.skew) / 32
	}
}

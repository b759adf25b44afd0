package webhook

import (
	"sync"
	"time"
)

// limiter is a token bucket per Source: perMinute tokens a minute, holding
// at most perMinute.
type limiter struct {
	mu      sync.Mutex
	perSec  float64
	burst   float64
	buckets map[string]*bucket
	now     func() time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(perMinute int) *limiter {
	if perMinute <= 0 {
		perMinute = DefaultRatePerMinute
	}
	return &limiter{perSec: float64(perMinute) / 60, burst: float64(perMinute), buckets: map[string]*bucket{}, now: time.Now}
}

func (r *Receiver) rate() *limiter {
	r.limiterOnce.Do(func() { r.limiter = newLimiter(r.RatePerMinute) })
	return r.limiter
}

// refill brings key's bucket up to now; the caller holds l.mu.
func (l *limiter) refill(key string, now time.Time) *bucket {
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= 4096 {
			l.prune(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.perSec)
	b.last = now
	return b
}

// prune forgets full buckets: they are the same as new ones.
func (l *limiter) prune(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.perSec >= l.burst {
			delete(l.buckets, k)
		}
	}
}

// allow takes a token from key's bucket if it has one.
func (l *limiter) allow(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.refill(key, l.now())
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// retryAfter is how long until every one of keys has a token again.
func (l *limiter) retryAfter(keys []string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var wait time.Duration
	for _, k := range keys {
		b := l.refill(k, now)
		if b.tokens < 1 {
			wait = max(wait, time.Duration((1-b.tokens)/l.perSec*float64(time.Second)))
		}
	}
	return wait
}

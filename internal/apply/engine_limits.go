package apply

import (
	"context"
	"sync"

	"k8s.io/client-go/dynamic"
)

// As returns an Engine like e whose writes and reads of objects (applies,
// dry runs, prunes, hooks) go through dyn, such as a client that
// impersonates an App's ServiceAccount. It shares e's watch cache,
// inventory store and limits: its syncs count against e's MaxInflight and
// MaxSyncs.
func (e *Engine) As(dyn dynamic.Interface) *Engine {
	root := e.root()
	return &Engine{
		Dynamic: dyn, Mapper: root.Mapper, Live: root.Live, Health: root.Health, Inventory: root.Inventory,
		Fingerprint: root.Fingerprint, Log: root.Log, Concurrency: root.Concurrency, MaxInflight: root.MaxInflight,
		MaxSyncs: root.MaxSyncs, PollInterval: root.PollInterval, parent: root,
	}
}

// root is the Engine whose limits e uses.
func (e *Engine) root() *Engine {
	if e.parent != nil {
		return e.parent
	}
	return e
}

// slots is a counting semaphore sized on first use.
type slots struct {
	once sync.Once
	ch   chan struct{}
}

// take waits for a slot of n (def when n <= 0).
func (s *slots) take(ctx context.Context, n, def int) error {
	s.once.Do(func() {
		if n <= 0 {
			n = def
		}
		s.ch = make(chan struct{}, n)
	})
	select {
	case s.ch <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// give returns a slot take took.
func (s *slots) give() { <-s.ch }

// DefaultMaxInflight is Engine.MaxInflight's default.
const DefaultMaxInflight = 32

// DefaultMaxSyncs is Engine.MaxSyncs's default: enough syncs at
// Concurrency applies each to keep DefaultMaxInflight applies busy while
// others render their plans, save inventories or wait.
const DefaultMaxSyncs = 16

// acquire takes one of the Engine's in-flight slots; release gives it back.
func (e *Engine) acquire(ctx context.Context) (release func(), err error) {
	r := e.root()
	if err := r.inflight.take(ctx, r.MaxInflight, DefaultMaxInflight); err != nil {
		return nil, err
	}
	return r.inflight.give, nil
}

// takeTurn waits for one of the Engine's sync turns (MaxSyncs).
func (e *Engine) takeTurn(ctx context.Context) error {
	r := e.root()
	return r.syncs.take(ctx, r.MaxSyncs, DefaultMaxSyncs)
}

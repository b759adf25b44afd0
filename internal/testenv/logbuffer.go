package testenv

import (
	"bytes"
	"strings"
	"sync"
)

// LogBuffer collects a log safely across goroutines.
type LogBuffer struct {
	// Keep, when positive, bounds the buffer to the last Keep bytes
	// written (a flooded controller logs a line per request).
	Keep int

	mu sync.Mutex
	b  bytes.Buffer
}

func (s *LogBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.b.Write(p)
	if over := s.b.Len() - s.Keep; s.Keep > 0 && over > 0 {
		s.b.Next(over)
	}
	return n, err
}

// Tail returns the last n lines.
func (s *LogBuffer) Tail(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	lines := strings.Split(strings.TrimRight(s.b.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// String returns the whole log.
func (s *LogBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

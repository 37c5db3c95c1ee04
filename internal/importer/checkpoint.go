package importer

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// checkpoint is the resume point of an interrupted run: every record up to
// and including After (in the source's order) is done. It names the source
// and the app so that a file left from another import is never applied to
// this one. It holds no secret.
type checkpoint struct {
	path   string
	Source string `json:"source"`
	App    string `json:"app"`
	After  string `json:"after"`
}

func loadCheckpoint(path, source, app string) (*checkpoint, error) {
	cp := &checkpoint{path: path, Source: source, App: app}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return cp, nil
	}
	if err != nil {
		return nil, fmt.Errorf("--checkpoint: %w", err)
	}
	var saved checkpoint
	if err := json.Unmarshal(data, &saved); err != nil {
		return nil, fmt.Errorf("--checkpoint %s is not a checkpoint of tenantry import: %v", path, err)
	}
	if saved.Source != source || saved.App != app {
		return nil, fmt.Errorf("--checkpoint %s belongs to the import of %s into %s, not of %s into %s; remove it or name another file", path, saved.Source, saved.App, source, app)
	}
	cp.After = saved.After
	return cp, nil
}

// save writes the file atomically (a temporary file renamed over it), so
// an interruption never leaves half a checkpoint.
func (c *checkpoint) save() error {
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(c.path), ".tenantry-import-*")
	if err != nil {
		return fmt.Errorf("--checkpoint: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("--checkpoint: %w", err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("--checkpoint: %w", err)
	}
	if err := os.Rename(tmp.Name(), c.path); err != nil {
		return fmt.Errorf("--checkpoint: %w", err)
	}
	return nil
}

func (c *checkpoint) remove() error {
	if err := os.Remove(c.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("--checkpoint: %w", err)
	}
	return nil
}

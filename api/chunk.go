package api

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
)

// Large files (LOCAL-API §4.1): a file of at least ChunkSize bytes is copied into chunk files
// <connector_files_dirpath>/<dst_name>__aioconnectors_chunk_<i>_<n> and sent as n messages whose
// with_file names the chunk (src_path, dst_name) and carries chunked = [<dst_name>__aioconnectors_chunk, i, n];
// the receiving connector reassembles them. 1.0.33's chunk size is 1 000 000 000 bytes; aioconn
// raises it so that there are never more than 9 chunks, because a 1.0.33 receiver sorts chunk
// names as text and scrambles files of 10 chunks or more.

// ChunkSize is 1.0.33's MAX_SIZE_CHUNK_UPLOAD.
const ChunkSize = 1_000_000_000

// chunkIndicator is appended to dst_name to name the chunks.
const chunkIndicator = "__aioconnectors_chunk"

// chunkSizeFor returns the chunk size for a file of size bytes (0: send whole).
func chunkSizeFor(size, base int64) int64 {
	if size < base {
		return 0
	}
	cs := base
	if n := (size + cs - 1) / cs; n > 9 {
		cs = (size + 8) / 9
	}
	return cs
}

// sendChunked splits o's file and sends one message per chunk (the result of the first failing
// send, or of the last one). Chunk files are deleted after an await/ack send; otherwise the
// connector deletes each after sending it (delete is true for chunks unless the caller said
// false, as Python leaves it).
func (a *API) sendChunked(ctx context.Context, o SendOptions, size, cs int64, await bool) (*Message, error) {
	wf := *o.WithFile
	src, err := os.Open(wf.SrcPath)
	if err != nil {
		return nil, fmt.Errorf("api: with_file %s: %w", wf.SrcPath, err)
	}
	defer src.Close()
	n := int((size + cs - 1) / cs)
	base := wf.DstName + chunkIndicator
	var last *Message
	for i := 1; i <= n; i++ {
		name := base + "_" + strconv.Itoa(i) + "_" + strconv.Itoa(n)
		path := filepath.Join(a.cfg.ConnectorFilesDirpath, name)
		f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
		if err != nil {
			return nil, fmt.Errorf("api: chunk %s: %w", path, err)
		}
		if _, err := io.CopyN(f, src, cs); err != nil && err != io.EOF {
			f.Close()
			return nil, fmt.Errorf("api: chunk %s: %w", path, err)
		}
		f.Close()
		co := o
		cwf := wf
		cwf.SrcPath, cwf.DstName = path, name
		cwf.Chunked = &Chunked{Basename: base, Index: i, Total: n}
		co.WithFile = &cwf
		if await {
			last, err = a.SendMessageAwaitResponse(ctx, co)
		} else {
			err = a.SendMessage(ctx, co)
		}
		if await || o.WaitForAck {
			os.Remove(path)
		}
		if err != nil {
			return nil, err
		}
	}
	if wf.Delete == nil || *wf.Delete {
		os.Remove(wf.SrcPath)
	}
	return last, nil
}

// maybeChunk sends o in chunks when its file is large; handled reports whether it did.
func (a *API) maybeChunk(ctx context.Context, o SendOptions, await bool) (m *Message, handled bool, err error) {
	if o.WithFile == nil || o.WithFile.Chunked != nil || o.WithFile.SrcPath == "" {
		return nil, false, nil
	}
	st, err := os.Stat(o.WithFile.SrcPath)
	if err != nil {
		return nil, false, nil // the connector reports file_error to the peer, as in Python
	}
	cs := chunkSizeFor(st.Size(), a.chunkSize())
	if cs == 0 {
		return nil, false, nil
	}
	m, err = a.sendChunked(ctx, o, st.Size(), cs, await)
	return m, true, err
}

func (a *API) chunkSize() int64 {
	if a.chunk > 0 {
		return a.chunk
	}
	return ChunkSize
}

// SetChunkSize changes the size from which files are split (tests and tuning; default
// ChunkSize). Not safe to call while sends are in progress.
func (a *API) SetChunkSize(n int64) { a.chunk = n }



def test_a_snapshot_read_in_small_batches_equals_the_table(store, provider, monkeypatch):
    """The full read streams batches (one batch's float32 in memory at a time): same rows, same order of
    positions and addresses as one read of the whole version, and an empty table gives an empty block."""
    from nexus_query.store import index

    monkeypatch.setattr(index, "READ_BATCH_ROWS", 16)
    texts = {f"doc-{i}": f"note {i} about {'tents' if i % 2 else 'stoves'}" for i in range(70)}
    space = load_texts(store, provider, ACME, "main", texts)
    snap = SnapshotCache().get(space.table, space.location.dataset_uri)
    whole = space.table.search().select(["id", "text", "vector", "_rowaddr"]).limit(None).to_arrow()
    assert snap.addrs.tolist() == whole.column("_rowaddr").to_pylist()
    assert snap.rows.column("id").to_pylist() == whole.column("id").to_pylist()
    expected = np.asarray(whole.column("vector").to_pylist(), np.float32)
    assert np.array_equal(np.asarray(snap.blocks[0].vectors), expected)
    query = provider.embed(["tents"])[0]
    positions, scores = snap.top(query, 20)
    assert positions.tolist() == float32_top(expected, snap.addrs, query, 20)[0]

    empty = store.open_or_create(ACME, "empty", provider.info)
    nothing = SnapshotCache().get(empty.table, empty.location.dataset_uri)
    assert nothing.num_rows == 0 and nothing.top(query, 5)[0].size == 0

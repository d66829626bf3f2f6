use datafusion::execution::memory_pool::FairSpillPool;

use super::*;

fn pool(shared: &Arc<dyn MemoryPool>, running: &Arc<AtomicUsize>) -> Arc<dyn MemoryPool> {
    Arc::new(QueryPool::new(shared.clone(), running.clone(), 1000))
}

#[test]
fn a_query_holds_its_share_of_the_pool_of_all_queries() {
    let shared: Arc<dyn MemoryPool> = Arc::new(FairSpillPool::new(1000));
    let running = Arc::new(AtomicUsize::new(0));
    let first = pool(&shared, &running);
    let a = MemoryConsumer::new("join").register(&first);
    // Alone, a query may take the whole pool.
    a.try_grow(900).unwrap();
    let second = pool(&shared, &running);
    assert_eq!(running.load(Ordering::Relaxed), 2);
    // Two run: each may hold half; the first is past it and may not grow.
    let err = a.try_grow(1).unwrap_err().to_string();
    assert!(err.contains("share of query memory is 500 bytes now (2 queries running"), "{err}");
    let b = MemoryConsumer::new("sort").register(&second);
    b.try_grow(100).unwrap();
    // The shared pool has nothing left, whatever the second query's share.
    assert!(b.try_grow(50).is_err());
    drop(a);
    b.try_grow(400).unwrap();
    assert!(b.try_grow(1).is_err(), "the second query holds its share");
    assert_eq!(second.reserved(), 500);
    drop(b);
    drop(first);
    assert_eq!(running.load(Ordering::Relaxed), 1, "a finished query's pool leaves the count");
    assert_eq!(shared.reserved(), 0);
}

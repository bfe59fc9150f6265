//! The cache's rules, checked against a real directory origin wrapped to count calls, hold a
//! copy open, or cut it short.

use super::*;
use async_trait::async_trait;
use std::path::Path;
use std::pin::Pin as StdPin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tessera_origin::Origin;
use tessera_origin::{DirOrigin, ObjectMeta, ObjectReader};
use tokio::io::ReadBuf;
use tokio::sync::Notify;

/// A directory origin that counts HEADs and GETs, can hold GETs until released, and can cut a
/// body short.
struct Probe {
    dir: DirOrigin,
    heads: AtomicUsize,
    gets: AtomicUsize,
    ranged_gets: AtomicUsize,
    hold: AtomicBool,
    release: Notify,
    cut_after: std::sync::Mutex<Option<u64>>,
}

impl Probe {
    fn new(root: &Path) -> Arc<Self> {
        Arc::new(Self {
            dir: DirOrigin::new(root),
            heads: AtomicUsize::new(0),
            gets: AtomicUsize::new(0),
            ranged_gets: AtomicUsize::new(0),
            hold: AtomicBool::new(false),
            release: Notify::new(),
            cut_after: std::sync::Mutex::new(None),
        })
    }
}

/// A reader that fails after `left` bytes.
struct Cut {
    inner: ObjectReader,
    left: u64,
}

impl AsyncRead for Cut {
    fn poll_read(
        mut self: StdPin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.left == 0 {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "cut",
            )));
        }
        let max = self.left.min(buf.remaining() as u64) as usize;
        let mut chunk = vec![0u8; max];
        let mut limited = ReadBuf::new(&mut chunk);
        let poll = StdPin::new(&mut self.inner).poll_read(cx, &mut limited);
        let n = limited.filled().len();
        buf.put_slice(&chunk[..n]);
        self.left -= n as u64;
        poll
    }
}
use tokio::io::AsyncRead;

#[async_trait]
impl Origin for Probe {
    async fn head(&self, key: &str) -> Result<ObjectMeta, OriginError> {
        self.heads.fetch_add(1, Ordering::SeqCst);
        self.dir.head(key).await
    }
    async fn get(
        &self,
        key: &str,
        range: Option<std::ops::Range<u64>>,
        version: Option<&str>,
    ) -> Result<ObjectReader, OriginError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        if range.is_some() {
            self.ranged_gets.fetch_add(1, Ordering::SeqCst);
        }
        if self.hold.load(Ordering::SeqCst) {
            self.release.notified().await;
        }
        let reader = self.dir.get(key, range, version).await?;
        match *self.cut_after.lock().unwrap() {
            Some(left) => Ok(Box::new(Cut {
                inner: reader,
                left,
            })),
            None => Ok(reader),
        }
    }
    fn describe(&self) -> String {
        "probe".into()
    }
}

struct Fixture {
    _tmp: tempfile::TempDir,
    origin_dir: PathBuf,
    cache_dir: PathBuf,
    probe: Arc<Probe>,
    origin: Arc<dyn Origin>,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let origin_dir = tmp.path().join("origin");
    let cache_dir = tmp.path().join("cache");
    std::fs::create_dir_all(&origin_dir).unwrap();
    let probe = Probe::new(&origin_dir);
    Fixture {
        origin: probe.clone(),
        probe,
        origin_dir,
        cache_dir,
        _tmp: tmp,
    }
}

fn object(f: &Fixture, key: &str, size: usize) -> Vec<u8> {
    let body: Vec<u8> = (0..size).map(|i| (i * 7 + key.len()) as u8).collect();
    let path = f.origin_dir.join(key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, &body).unwrap();
    body
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_waiters_share_one_copy() {
    let f = fixture();
    let body = object(&f, "a/img", 300_000);
    let (cache, _) = HotCache::open(Settings::new(&f.cache_dir, 10 << 20), None).unwrap();
    f.probe.hold.store(true, Ordering::SeqCst);
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (cache, origin) = (cache.clone(), f.origin.clone());
        tasks.push(tokio::spawn(async move {
            cache.ensure(&origin, "a/img", ".jp2").await
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    f.probe.hold.store(false, Ordering::SeqCst);
    f.probe.release.notify_waiters();
    for t in tasks {
        let lease = t.await.unwrap().expect("copy succeeds");
        assert_eq!(std::fs::read(lease.path()).unwrap(), body);
    }
    assert_eq!(f.probe.heads.load(Ordering::SeqCst), 1);
    assert_eq!(f.probe.gets.load(Ordering::SeqCst), 1);
    // A later request is a hit: no origin access at all.
    cache.ensure(&f.origin, "a/img", ".jp2").await.unwrap();
    assert_eq!(f.probe.gets.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_that_leaves_does_not_cancel_the_copy() {
    let f = fixture();
    let body = object(&f, "img", 100_000);
    let (cache, _) = HotCache::open(Settings::new(&f.cache_dir, 10 << 20), None).unwrap();
    f.probe.hold.store(true, Ordering::SeqCst);
    let first = {
        let (cache, origin) = (cache.clone(), f.origin.clone());
        tokio::spawn(async move { cache.ensure(&origin, "img", "").await.map(|_| ()) })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    first.abort();
    let second = {
        let (cache, origin) = (cache.clone(), f.origin.clone());
        tokio::spawn(async move { cache.ensure(&origin, "img", "").await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    f.probe.hold.store(false, Ordering::SeqCst);
    f.probe.release.notify_waiters();
    let lease = second.await.unwrap().unwrap();
    assert_eq!(std::fs::read(lease.path()).unwrap(), body);
    assert_eq!(f.probe.gets.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_copy_reaches_every_waiter_and_leaves_nothing() {
    let f = fixture();
    let body = object(&f, "img", 200_000);
    let (cache, _) = HotCache::open(Settings::new(&f.cache_dir, 10 << 20), None).unwrap();
    *f.probe.cut_after.lock().unwrap() = Some(50_000);
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (cache, origin) = (cache.clone(), f.origin.clone());
        tasks.push(tokio::spawn(async move {
            cache.ensure(&origin, "img", "").await.map(|_| ())
        }));
    }
    for t in tasks {
        let err = t.await.unwrap().unwrap_err();
        assert!(matches!(err, CopyError::Origin(_)), "{err:?}");
    }
    assert_eq!(files_in(&f.cache_dir.join("objects")), 0);
    assert_eq!(files_in(&f.cache_dir.join("tmp")), 0);
    assert_eq!(cache.usage(), (0, 0, 0));
    *f.probe.cut_after.lock().unwrap() = None;
    let lease = cache.ensure(&f.origin, "img", "").await.unwrap();
    assert_eq!(std::fs::read(lease.path()).unwrap(), body);
}

#[tokio::test]
async fn not_found_is_remembered_briefly() {
    let f = fixture();
    let mut settings = Settings::new(&f.cache_dir, 1 << 20);
    settings.not_found_ttl = Duration::from_millis(200);
    let (cache, _) = HotCache::open(settings, None).unwrap();
    for _ in 0..3 {
        let e = cache.ensure(&f.origin, "nope", "").await.unwrap_err();
        assert_eq!(e, CopyError::NotFound);
    }
    assert_eq!(f.probe.heads.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(250)).await;
    object(&f, "nope", 10);
    cache.ensure(&f.origin, "nope", "").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_holds_and_pinned_files_stay() {
    let f = fixture();
    let mut settings = Settings::new(&f.cache_dir, 100_000);
    settings.high_watermark = 0.9;
    settings.low_watermark = 0.5;
    let (cache, _) = HotCache::open(settings, None).unwrap();
    let pinned = {
        object(&f, "keep", 20_000);
        cache.ensure(&f.origin, "keep", "").await.unwrap()
    };
    for i in 0..30 {
        let key = format!("img{i}");
        object(&f, &key, 15_000);
        let lease = cache.ensure(&f.origin, &key, "").await.unwrap();
        assert!(lease.path().exists());
        let (used, _, _) = cache.usage();
        assert!(used <= 90_000, "{used} bytes used after {key}");
        let on_disk: u64 = std::fs::read_dir(f.cache_dir.join("objects"))
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert_eq!(on_disk, used, "the index matches the disk");
        assert!(pinned.path().exists(), "a pinned file was evicted");
    }
    drop(pinned);
    // The copy task lets go of its copy's pin just after answering.
    for _ in 0..100 {
        if cache.usage().2 == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(cache.usage().2, 0);
}

#[tokio::test]
async fn objects_over_the_budget_are_refused() {
    let f = fixture();
    object(&f, "big", 50_000);
    let (cache, _) = HotCache::open(Settings::new(&f.cache_dir, 40_000), None).unwrap();
    let e = cache.ensure(&f.origin, "big", "").await.unwrap_err();
    assert!(matches!(e, CopyError::TooLarge { .. }), "{e:?}");
    assert_eq!(f.probe.gets.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn restart_recovers_the_index_and_sweeps_temporaries() {
    let f = fixture();
    let body = object(&f, "img", 30_000);
    {
        let (cache, _) = HotCache::open(Settings::new(&f.cache_dir, 1 << 20), None).unwrap();
        cache.ensure(&f.origin, "img", ".jp2").await.unwrap();
    }
    std::fs::write(f.cache_dir.join("tmp/left-by-a-crash.part"), b"partial").unwrap();
    let (cache, recovered) = HotCache::open(Settings::new(&f.cache_dir, 1 << 20), None).unwrap();
    assert_eq!(
        recovered,
        Recovered {
            files: 1,
            bytes: 30_000,
            swept: 1
        }
    );
    assert_eq!(files_in(&f.cache_dir.join("tmp")), 0);
    let lease = cache.ensure(&f.origin, "img", ".jp2").await.unwrap();
    assert_eq!(std::fs::read(lease.path()).unwrap(), body);
    assert_eq!(
        f.probe.gets.load(Ordering::SeqCst),
        1,
        "served from disk after restart"
    );
}

#[tokio::test]
async fn restart_over_a_smaller_budget_evicts() {
    let f = fixture();
    {
        let (cache, _) = HotCache::open(Settings::new(&f.cache_dir, 1 << 20), None).unwrap();
        for i in 0..5 {
            object(&f, &format!("i{i}"), 10_000);
            cache.ensure(&f.origin, &format!("i{i}"), "").await.unwrap();
        }
    }
    let (cache, _) = HotCache::open(Settings::new(&f.cache_dir, 30_000), None).unwrap();
    assert!(cache.usage().0 <= 24_000, "{:?}", cache.usage());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_objects_are_copied_in_ranges_that_cover_them_once() {
    let f = fixture();
    let body = object(&f, "big", 1_000_003);
    let mut settings = Settings::new(&f.cache_dir, 10 << 20);
    settings.parallel_threshold = 100_000;
    settings.part_size = 100_000;
    settings.parallel_parts = 3;
    let (cache, _) = HotCache::open(settings, None).unwrap();
    let lease = cache.ensure(&f.origin, "big", "").await.unwrap();
    assert_eq!(std::fs::read(lease.path()).unwrap(), body);
    assert_eq!(f.probe.ranged_gets.load(Ordering::SeqCst), 11);
    assert_eq!(f.probe.gets.load(Ordering::SeqCst), 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_cut_short_fails_the_whole_copy() {
    let f = fixture();
    object(&f, "big", 500_000);
    let mut settings = Settings::new(&f.cache_dir, 10 << 20);
    settings.parallel_threshold = 100_000;
    settings.part_size = 100_000;
    let (cache, _) = HotCache::open(settings, None).unwrap();
    *f.probe.cut_after.lock().unwrap() = Some(60_000);
    assert!(cache.ensure(&f.origin, "big", "").await.is_err());
    assert_eq!(files_in(&f.cache_dir.join("objects")), 0);
    assert_eq!(files_in(&f.cache_dir.join("tmp")), 0);
}

#[tokio::test]
async fn one_process_per_directory() {
    let f = fixture();
    let (_first, _) = HotCache::open(Settings::new(&f.cache_dir, 1 << 20), None).unwrap();
    let second = HotCache::open(Settings::new(&f.cache_dir, 1 << 20), None);
    assert!(matches!(second, Err(OpenError::Locked)));
}

#[tokio::test]
async fn empty_files_left_by_a_power_cut_are_dropped_at_start() {
    let f = fixture();
    std::fs::create_dir_all(f.cache_dir.join("objects")).unwrap();
    std::fs::write(f.cache_dir.join("objects/abc.jp2"), b"").unwrap();
    std::fs::write(f.cache_dir.join("objects/def.jp2"), b"data").unwrap();
    let (cache, recovered) = HotCache::open(Settings::new(&f.cache_dir, 1 << 20), None).unwrap();
    assert_eq!((recovered.files, recovered.bytes), (1, 4));
    assert_eq!(cache.usage().1, 1);
    assert!(!f.cache_dir.join("objects/abc.jp2").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicted_name_copied_again_is_not_deleted_by_the_eviction() {
    let f = fixture();
    let mut settings = Settings::new(&f.cache_dir, 50_000);
    settings.high_watermark = 0.9;
    settings.low_watermark = 0.1;
    let (cache, _) = HotCache::open(settings, None).unwrap();
    object(&f, "a", 20_000);
    object(&f, "b", 20_000);
    object(&f, "c", 20_000);
    drop(cache.ensure(&f.origin, "a", "").await.unwrap());
    drop(cache.ensure(&f.origin, "b", "").await.unwrap());
    // c evicts a and b; then a comes back under the same name.
    drop(cache.ensure(&f.origin, "c", "").await.unwrap());
    let a = cache.ensure(&f.origin, "a", "").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(a.path().exists(), "the new copy was deleted");
    assert_eq!(std::fs::metadata(a.path()).unwrap().len(), 20_000);
}

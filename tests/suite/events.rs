//! The engine reports through events, not bars (issue 13): a library caller's observer sees
//! each stage, every byte and every object, and the numbers agree with the report.

use std::sync::{Arc, Mutex};

use shardsync::events::{Event, Observer, Stage};
use shardsync::sync::SyncOptions;

use crate::backends::{write_demo, Backend, Env};
use crate::harness::sync_outcome;

#[derive(Default)]
struct Recorder {
    seen: Mutex<Seen>,
}

#[derive(Default, Debug)]
struct Seen {
    stages: Vec<(Stage, u64, u64)>,
    finished: usize,
    bytes: u64,
    objects: Vec<String>,
}

impl Observer for Recorder {
    fn on_event(&self, event: &Event<'_>) {
        let mut s = self.seen.lock().unwrap();
        match *event {
            Event::StageStarted {
                stage,
                objects,
                bytes,
            } => s.stages.push((stage, objects, bytes)),
            Event::Bytes(n) => s.bytes += n,
            Event::BytesRetracted(n) => s.bytes -= n,
            Event::ObjectDone { path } => s.objects.push(path.to_string()),
            Event::StageFinished => s.finished += 1,
            _ => {}
        }
    }
}

backend_tests!(an_observer_sees_every_stage_byte_and_object_of_a_sync: local, s3);
async fn an_observer_sees_every_stage_byte_and_object_of_a_sync(backend: Backend) {
    let env = Env::new(backend).await;
    let src = env.open("a");
    let mut paths = write_demo(&src, 5, 40, 9).await;
    paths.push("dataset_info.json".into());
    let (dst, rec) = (env.open("b"), Arc::new(Recorder::default()));
    let opts = SyncOptions::default().with_observer(rec.clone());

    // No source manifest: the copies hash in flight, so copying is the only stage.
    let outcome = sync_outcome(&src, &dst, &opts).await;
    let r = &outcome.report;
    assert!(r.consistent, "{backend:?}: {r:?}");
    let seen = rec.seen.lock().unwrap();
    let copying: Vec<_> = seen.stages.iter().filter(|s| s.0 == Stage::Copying).collect();
    assert_eq!(copying.len(), 1, "{backend:?}: {seen:?}");
    assert_eq!(copying[0].1, r.shards_copied, "{backend:?}: {seen:?}");
    assert_eq!(copying[0].2, r.bytes_copied, "{backend:?}: {seen:?}");
    assert_eq!(
        seen.bytes, r.bytes_copied,
        "{backend:?}: every byte copied was reported"
    );
    assert_eq!(seen.finished, seen.stages.len(), "{backend:?}: every stage ends");
    let mut objects = seen.objects.clone();
    objects.sort();
    paths.sort();
    assert_eq!(objects, paths, "{backend:?}");
}

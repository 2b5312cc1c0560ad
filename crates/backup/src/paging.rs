//! Reading a whole collection page by page, several pages in flight, without losing,
//! repeating or reordering a record when another client writes meanwhile.
//!
//! No era has a cursor: a `get` takes `offset` and `limit` over a fixed order of the
//! collection's records (docs/chroma-eras.md#backup-and-restore): the id's text on 0.4.x, the
//! order of first add from 0.5 on. An update leaves a record where it is, but a delete moves
//! every later record one place down (and on 0.4.x an add whose id sorts earlier moves them up),
//! so a plain `offset += page` would skip or repeat one record per such write behind it. Each
//! page is therefore asked one record early: its first record must be the last one already
//! taken. When it is not, records moved; the reader then looks around for the newest record
//! it took that still exists and continues after it.
//! Pages are asked speculatively (`inflight` at a time) on the assumption that nothing moved,
//! and answers are taken strictly in order, so a mismatch only throws away what was asked
//! after it.

use std::collections::{HashMap, VecDeque};
use std::future::Future;

use futures::StreamExt;
use futures::stream::FuturesOrdered;

use crate::error::{Error, Result};
use crate::model::Record;

/// Where pages come from: a server's collection, or a simulated one in tests.
pub trait PageSource {
    /// Records `offset..offset + limit` in storage order (fewer at the end).
    fn page(&self, offset: usize, limit: usize) -> impl Future<Output = Result<Vec<Record>>>;
    /// The same window's ids alone.
    fn ids(&self, offset: usize, limit: usize) -> impl Future<Output = Result<Vec<String>>>;
}

/// What a read did, for the log and the tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    pub records: u64,
    pub requests: u64,
    /// Times the reader found records had moved and looked back for its place.
    pub reanchors: u64,
}

/// How many of the newest ids taken are kept to find the reader's place again.
fn tail_len(page: usize) -> usize {
    page.max(1000)
}

/// Reads every record of `src` in storage order, handing each accepted run to `sink`.
///
/// `collection` only names the collection in an error.
pub async fn read_all<S: PageSource>(
    src: &S,
    collection: &str,
    page: usize,
    inflight: usize,
    mut sink: impl FnMut(Vec<Record>) -> Result<()>,
) -> Result<Stats> {
    assert!(
        page > 0 && inflight > 0,
        "callers check the page size and the requests in flight"
    );
    let mut stats = Stats::default();
    // The newest ids taken, oldest first: where to look for the reader's place again.
    let mut tail: VecDeque<String> = VecDeque::new();
    // The record the next page must start with (the newest taken that still exists), and
    // where the server holds the record after it, as far as we know.
    let mut anchor: Option<String> = None;
    let mut base = 0usize;
    'pipeline: loop {
        // Page j asks `base + j*page - 1 ..` (one record early) once there is a record to
        // start from; the very first page of the collection asks from 0.
        let anchored = anchor.is_some();
        let start = base;
        let request = move |j: usize| {
            let (offset, limit) = if anchored || j > 0 {
                (start + j * page - 1, page + 1)
            } else {
                (0, page)
            };
            async move { (offset, limit, src.page(offset, limit).await) }
        };
        let mut pending = FuturesOrdered::new();
        let mut next = 0usize;
        while next < inflight {
            pending.push_back(request(next));
            next += 1;
        }
        let mut first = !anchored;
        while let Some((offset, limit, got)) = pending.next().await {
            let mut got = got?;
            stats.requests += 1;
            let end = got.len() < limit;
            if !first {
                if got.first().map(|r| &r.id) != anchor.as_ref() {
                    // Records moved since this page's predecessor was read: what was asked
                    // after it is stale too.
                    drop(pending);
                    stats.reanchors += 1;
                    // Moved by less than a page: the place is in this very page (progress even
                    // while another client keeps moving records).
                    let at: HashMap<&str, usize> = got
                        .iter()
                        .enumerate()
                        .map(|(i, r)| (r.id.as_str(), i))
                        .collect();
                    if let Some(i) = tail
                        .iter()
                        .rev()
                        .find_map(|id| at.get(id.as_str()).copied())
                    {
                        tracing::debug!(
                            collection,
                            from = base,
                            to = offset + i + 1,
                            "records moved while the collection was read; continuing after the last one taken"
                        );
                        let rest = got.split_off(i + 1);
                        base = offset + i + 1 + rest.len();
                        stats.records += rest.len() as u64;
                        remember(&mut tail, &rest, page);
                        anchor = Some(
                            rest.last()
                                .map_or_else(|| got[i].id.clone(), |r| r.id.clone()),
                        );
                        if !rest.is_empty() {
                            sink(rest)?;
                        }
                        if end {
                            return Ok(stats);
                        }
                        continue 'pipeline;
                    }
                    let (id, after) =
                        locate(src, collection, page, &tail, base, &mut stats).await?;
                    tracing::debug!(
                        collection,
                        from = base,
                        to = after,
                        "records moved while the collection was read; continuing after the last one taken"
                    );
                    (anchor, base) = (Some(id), after);
                    continue 'pipeline;
                }
                got.remove(0);
            }
            first = false;
            base += got.len();
            stats.records += got.len() as u64;
            remember(&mut tail, &got, page);
            if let Some(last) = got.last() {
                anchor = Some(last.id.clone());
                sink(got)?;
            }
            if end {
                return Ok(stats);
            }
            pending.push_back(request(next));
            next += 1;
        }
        unreachable!("the pipeline always holds a request until the collection's end");
    }
}

fn remember(tail: &mut VecDeque<String>, got: &[Record], page: usize) {
    let keep = tail_len(page);
    for r in got.iter().skip(got.len().saturating_sub(keep)) {
        if tail.len() == keep {
            tail.pop_front();
        }
        tail.push_back(r.id.clone());
    }
}

/// Finds the newest record taken that still exists, by ids alone (a small answer, whatever
/// the records hold), in a window around where the reader thought it was that widens both
/// ways (0.4.x can move records up as well as down). Returns its id and the offset of the
/// record after it.
async fn locate<S: PageSource>(
    src: &S,
    collection: &str,
    page: usize,
    tail: &VecDeque<String>,
    base: usize,
    stats: &mut Stats,
) -> Result<(String, usize)> {
    let mut reach = tail_len(page);
    loop {
        let offset = base.saturating_sub(reach);
        let limit = (base - offset) + reach;
        let ids = src.ids(offset, limit).await?;
        stats.requests += 1;
        let at: HashMap<&str, usize> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i))
            .collect();
        if let Some((id, i)) = tail
            .iter()
            .rev()
            .find_map(|id| at.get(id.as_str()).map(|&i| (id.clone(), i)))
        {
            return Ok((id, offset + i + 1));
        }
        if offset == 0 && ids.len() < limit {
            // The whole collection was seen and none of them is left.
            return Err(Error::Moved {
                collection: collection.to_string(),
                window: tail.len(),
            });
        }
        reach *= 2;
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use rstest::rstest;

    fn rec(id: usize) -> Record {
        Record {
            id: format!("r{id:06}"),
            embedding: Some(vec![id as f32]),
            document: None,
            metadata: None,
            uri: None,
        }
    }

    /// A collection in storage order that another client changes between requests: `edits`
    /// runs before answering the n-th request (n counted from 0) and may add or delete.
    struct Sim<F: Fn(usize, &mut Vec<Record>, &mut usize)> {
        rows: RefCell<Vec<Record>>,
        next_id: RefCell<usize>,
        calls: RefCell<usize>,
        edits: F,
    }

    impl<F: Fn(usize, &mut Vec<Record>, &mut usize)> Sim<F> {
        fn new(n: usize, edits: F) -> Self {
            Sim {
                rows: RefCell::new((0..n).map(rec).collect()),
                next_id: RefCell::new(n),
                calls: RefCell::new(0),
                edits,
            }
        }
    }

    impl<F: Fn(usize, &mut Vec<Record>, &mut usize)> PageSource for Sim<F> {
        async fn page(&self, offset: usize, limit: usize) -> Result<Vec<Record>> {
            let call = {
                let mut c = self.calls.borrow_mut();
                *c += 1;
                *c - 1
            };
            (self.edits)(
                call,
                &mut self.rows.borrow_mut(),
                &mut self.next_id.borrow_mut(),
            );
            let rows = self.rows.borrow();
            Ok(rows.iter().skip(offset).take(limit).cloned().collect())
        }

        async fn ids(&self, offset: usize, limit: usize) -> Result<Vec<String>> {
            Ok(self
                .page(offset, limit)
                .await?
                .into_iter()
                .map(|r| r.id)
                .collect())
        }
    }

    fn read<F: Fn(usize, &mut Vec<Record>, &mut usize)>(
        sim: &Sim<F>,
        page: usize,
        inflight: usize,
    ) -> (Vec<String>, Stats) {
        let mut out = Vec::new();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let stats = rt
            .block_on(read_all(sim, "c", page, inflight, |b| {
                out.extend(b.into_iter().map(|r| r.id));
                Ok(())
            }))
            .unwrap();
        (out, stats)
    }

    /// Every id at most once, in the order of `order` (the server's order at the end).
    fn assert_in_order_once(got: &[String], order: &[String]) {
        let pos: HashMap<&str, usize> = order
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i))
            .collect();
        let mut last = None;
        let mut seen = std::collections::HashSet::new();
        for id in got {
            assert!(seen.insert(id), "{id} taken twice");
            if let Some(&p) = pos.get(id.as_str()) {
                assert!(last.is_none_or(|l| l < p), "{id} out of storage order");
                last = Some(p);
            }
        }
    }

    #[rstest]
    #[case::empty(0, 10, 1)]
    #[case::one_short_page(7, 10, 3)]
    #[case::exactly_one_page(10, 10, 3)]
    #[case::exact_pages_sequential(100, 10, 1)]
    #[case::exact_pages_in_flight(100, 10, 4)]
    #[case::ragged_end_in_flight(1003, 100, 3)]
    fn an_unchanged_collection_is_read_whole_in_order(
        #[case] n: usize,
        #[case] page: usize,
        #[case] inflight: usize,
    ) {
        let sim = Sim::new(n, |_, _, _| {});
        let (got, stats) = read(&sim, page, inflight);
        let want: Vec<String> = (0..n).map(|i| rec(i).id).collect();
        assert_eq!(got, want);
        assert_eq!(stats.reanchors, 0);
        assert_eq!(stats.records, n as u64);
    }

    #[rstest]
    #[case::sequential(1)]
    #[case::four_in_flight(4)]
    fn deletes_behind_the_reader_lose_nothing_else(#[case] inflight: usize) {
        // Before every 3rd request, delete the oldest remaining record with an even id, which is
        // behind the reader once it has started: a plain offset would skip one record each time.
        let sim = Sim::new(500, |call, rows, _| {
            if call > 0
                && call.is_multiple_of(3)
                && let Some(i) = rows
                    .iter()
                    .position(|r| (r.embedding.as_ref().unwrap()[0] as usize).is_multiple_of(2))
            {
                rows.remove(i);
            }
        });
        let (got, stats) = read(&sim, 20, inflight);
        let survivors: Vec<String> = sim.rows.borrow().iter().map(|r| r.id.clone()).collect();
        for id in &survivors {
            assert!(got.contains(id), "{id} was never deleted and is missing");
        }
        assert_in_order_once(&got, &survivors);
        assert!(
            stats.reanchors > 0,
            "the simulation must have moved records under the reader"
        );
    }

    #[test]
    fn deleting_the_record_the_reader_stands_on_is_survived() {
        // Before request 2, delete the last record request 1 returned (id 19) and the two before it.
        let sim = Sim::new(100, |call, rows, _| {
            if call == 2 {
                rows.retain(|r| !(17..=19).contains(&(r.embedding.as_ref().unwrap()[0] as usize)));
            }
        });
        let (got, stats) = read(&sim, 10, 1);
        // 17–19 were taken before they were deleted; nothing after them may be lost.
        let want: Vec<String> = (0..100).map(|i| rec(i).id).collect();
        assert_eq!(got, want);
        assert_eq!(stats.reanchors, 1);
    }

    #[test]
    fn records_added_meanwhile_are_taken_once_at_the_end() {
        let sim = Sim::new(95, |call, rows, next| {
            if call % 2 == 1 {
                rows.push(rec(*next));
                *next += 1;
            }
        });
        let (got, _) = read(&sim, 10, 3);
        let all: Vec<String> = sim.rows.borrow().iter().map(|r| r.id.clone()).collect();
        assert!(got.len() > 95, "some additions are read");
        assert_eq!(
            got[..],
            all[..got.len()],
            "a prefix of the final order, no gaps"
        );
    }

    #[rstest]
    #[case::sequential(1)]
    #[case::three_in_flight(3)]
    fn records_added_in_front_of_the_reader_repeat_nothing(#[case] inflight: usize) {
        // 0.4.x orders by id: an add whose id sorts first moves every record one place up.
        let sim = Sim::new(300, |call, rows, next| {
            if call > 0 {
                rows.insert(
                    0,
                    Record {
                        id: format!("a{:06}", *next),
                        ..rec(0)
                    },
                );
                *next += 1;
            }
        });
        let (got, stats) = read(&sim, 16, inflight);
        let want: Vec<String> = (0..300).map(|i| rec(i).id).collect();
        let old: Vec<String> = got.iter().filter(|i| i.starts_with('r')).cloned().collect();
        assert_eq!(old, want, "every record once, in order");
        let order: Vec<String> = sim.rows.borrow().iter().map(|r| r.id.clone()).collect();
        assert_in_order_once(&got, &order);
        assert!(
            stats.reanchors > 0,
            "the simulation must have moved records under the reader"
        );
    }

    #[test]
    fn a_bulk_add_in_front_of_the_reader_larger_than_its_memory_is_survived() {
        // 2,500 ids sorting first arrive at once: the reader's place moves up by more than
        // it remembers, so the search must widen forwards too.
        let sim = Sim::new(400, |call, rows, _| {
            if call == 2 {
                for k in 0..2500 {
                    rows.insert(
                        0,
                        Record {
                            id: format!("a{k:06}"),
                            ..rec(0)
                        },
                    );
                }
            }
        });
        let (got, stats) = read(&sim, 100, 2);
        let old: Vec<String> = got.iter().filter(|i| i.starts_with('r')).cloned().collect();
        assert_eq!(
            old,
            (0..400).map(|i| rec(i).id).collect::<Vec<_>>(),
            "every record once, in order"
        );
        assert_eq!(stats.reanchors, 1);
    }

    #[test]
    fn a_collection_emptied_under_the_reader_is_an_error_not_a_silent_loss() {
        let sim = Sim::new(3000, |call, rows, _| {
            if call == 2 {
                rows.drain(..2500);
            }
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let r = rt.block_on(read_all(&sim, "c", 1000, 1, |_| Ok(())));
        assert!(matches!(r, Err(Error::Moved { .. })), "{r:?}");
    }
}

//! Contracts of the two signing-key lineages (access tokens, ID tokens):
//! every state rule holds within one lineage, so the two coexist, insert and
//! rotate apart, and racing writers leave one current and one next key in
//! each.

use super::*;

const ACCESS: KeyPurpose = KeyPurpose::Access;
const ID: KeyPurpose = KeyPurpose::IdToken;

fn lineage_key(kid: &str, purpose: KeyPurpose, state: KeyState) -> StoredKey {
    StoredKey {
        purpose,
        alg: match purpose {
            KeyPurpose::Access => "EdDSA",
            KeyPurpose::IdToken => "RS256",
        }
        .to_owned(),
        ..signing_key(kid, state)
    }
}

/// `(kid, purpose, state)` of every stored key, sorted by kid.
async fn lineages(store: &dyn Store) -> Vec<(String, KeyPurpose, KeyState)> {
    let mut keys: Vec<_> = store
        .signing_keys()
        .await
        .expect("signing_keys")
        .into_iter()
        .map(|k| (k.kid, k.purpose, k.state))
        .collect();
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    keys
}

async fn of_lineage(store: &dyn Store, purpose: KeyPurpose) -> Vec<StoredKey> {
    sorted_keys(
        store
            .signing_keys()
            .await
            .expect("signing_keys")
            .into_iter()
            .filter(|k| k.purpose == purpose)
            .collect(),
    )
}

/// Keys of both lineages round-trip with their purpose; "insert unless a
/// key is in this state" looks only at the new key's lineage.
pub async fn two_key_lineages_coexist_and_each_inserts_one_key_per_state(backend: &impl Backend) {
    let store = backend.open().await;
    for k in [
        lineage_key("a-current", ACCESS, KeyState::Current),
        lineage_key("a-next", ACCESS, KeyState::Next),
    ] {
        assert!(store.insert_signing_key_if_none(&k).await.expect("insert"));
    }
    // The access lineage's current and next keys do not stop the ID-token
    // lineage's...
    let id_keys = [
        lineage_key("i-current", ID, KeyState::Current),
        lineage_key("i-next", ID, KeyState::Next),
    ];
    for k in &id_keys {
        assert!(store.insert_signing_key_if_none(k).await.expect("insert"));
    }
    // ...but each lineage's own do.
    for k in [
        lineage_key("a-current-2", ACCESS, KeyState::Current),
        lineage_key("a-next-2", ACCESS, KeyState::Next),
        lineage_key("i-current-2", ID, KeyState::Current),
        lineage_key("i-next-2", ID, KeyState::Next),
    ] {
        assert!(
            !store.insert_signing_key_if_none(&k).await.expect("insert"),
            "{} inserted beside its lineage's {:?} key",
            k.kid,
            k.state
        );
    }
    // A retired key of one lineage is no current or next key of either.
    let retired = lineage_key("i-retired", ID, KeyState::Retired);
    store.insert_signing_key(&retired).await.expect("insert");
    assert_eq!(
        lineages(&*store).await,
        [
            ("a-current".to_owned(), ACCESS, KeyState::Current),
            ("a-next".to_owned(), ACCESS, KeyState::Next),
            ("i-current".to_owned(), ID, KeyState::Current),
            ("i-next".to_owned(), ID, KeyState::Next),
            ("i-retired".to_owned(), ID, KeyState::Retired),
        ]
    );
    let mut expected = id_keys.to_vec();
    expected.push(retired);
    assert_eq!(of_lineage(&*store, ID).await, sorted_keys(expected));
}

/// A rotation moves only the lineage of its new key: it expects that
/// lineage's current key (the other lineage's is no match), promotes that
/// lineage's oldest next key (even if the other lineage has an older one),
/// and leaves every key of the other lineage as it was, including removal
/// of retired keys, which is by age alone.
pub async fn rotating_one_lineage_leaves_the_other_untouched(backend: &impl Backend) {
    let store = backend.open().await;
    let older = |k: StoredKey| StoredKey {
        created_at: T0 - 100,
        ..k
    };
    for k in [
        lineage_key("a-current", ACCESS, KeyState::Current),
        older(lineage_key("a-next", ACCESS, KeyState::Next)),
        lineage_key("i-current", ID, KeyState::Current),
        lineage_key("i-next", ID, KeyState::Next),
    ] {
        store.insert_signing_key(&k).await.expect("insert");
    }
    let now = T0 + 100;
    let before = store.signing_keys().await.expect("signing_keys");
    // The other lineage's current key, or a new key of the wrong lineage:
    // no rotation, nothing written.
    let new_id = lineage_key("i-new", ID, KeyState::Next);
    for (expected, new_next) in [
        ("a-current", &new_id),
        ("i-current", &lineage_key("a-new", ACCESS, KeyState::Next)),
    ] {
        assert!(
            !store
                .rotate_signing_keys(expected, new_next, now)
                .await
                .expect("rotate"),
            "{expected} rotated by a {:?} key",
            new_next.purpose
        );
    }
    assert_eq!(store.signing_keys().await.expect("signing_keys"), before);

    let access_before = of_lineage(&*store, ACCESS).await;
    assert!(store
        .rotate_signing_keys("i-current", &new_id, now)
        .await
        .expect("rotate"));
    assert_eq!(of_lineage(&*store, ACCESS).await, access_before);
    let id_after: Vec<_> = of_lineage(&*store, ID)
        .await
        .into_iter()
        .map(|k| (k.kid, k.state, k.activated_at, k.retired_at))
        .collect();
    assert_eq!(
        id_after,
        [
            (
                "i-current".to_owned(),
                KeyState::Retired,
                Some(T0 + 1),
                Some(now)
            ),
            ("i-new".to_owned(), KeyState::Next, None, None),
            ("i-next".to_owned(), KeyState::Current, Some(now), None),
        ]
    );

    let id_before = of_lineage(&*store, ID).await;
    assert!(store
        .rotate_signing_keys(
            "a-current",
            &lineage_key("a-new", ACCESS, KeyState::Next),
            now + 1
        )
        .await
        .expect("rotate"));
    assert_eq!(of_lineage(&*store, ID).await, id_before);
    assert_eq!(
        lineages(&*store).await,
        [
            ("a-current".to_owned(), ACCESS, KeyState::Retired),
            ("a-new".to_owned(), ACCESS, KeyState::Next),
            ("a-next".to_owned(), ACCESS, KeyState::Current),
            ("i-current".to_owned(), ID, KeyState::Retired),
            ("i-new".to_owned(), ID, KeyState::Next),
            ("i-next".to_owned(), ID, KeyState::Current),
        ]
    );

    // Retired keys go by age, whichever their lineage.
    assert_eq!(
        store
            .delete_retired_keys_before(now + 1)
            .await
            .expect("delete"),
        1
    );
    assert_eq!(
        store
            .delete_retired_keys_before(now + 2)
            .await
            .expect("delete"),
        1
    );
    assert_eq!(store.signing_keys().await.expect("keys").len(), 4);
}

/// Nodes creating keys at once (at first start, or the ID-token lineage on
/// first need): of many concurrent "insert unless one exists" of a current
/// key per lineage, exactly one per lineage is written.
pub async fn racing_inserts_make_one_key_per_lineage_and_state(backend: &impl Backend) {
    const RACERS: usize = 12;
    let store = backend.open().await;
    let start = Arc::new(Barrier::new(2 * RACERS));
    let tasks: Vec<_> = (0..2 * RACERS)
        .map(|i| {
            let store = Arc::clone(&store);
            let start = Arc::clone(&start);
            let purpose = if i % 2 == 0 { ACCESS } else { ID };
            let key = lineage_key(&format!("racer-{i}"), purpose, KeyState::Current);
            tokio::spawn(async move {
                start.wait().await;
                let won = store.insert_signing_key_if_none(&key).await;
                (purpose, won.expect("insert must not fail under contention"))
            })
        })
        .collect();
    let mut winners = BTreeMap::new();
    for task in tasks {
        let (purpose, won) = task.await.expect("racer task");
        *winners.entry(purpose).or_insert(0) += usize::from(won);
    }
    assert_eq!(winners, BTreeMap::from([(ACCESS, 1), (ID, 1)]));
    let states: Vec<_> = lineages(&*store)
        .await
        .into_iter()
        .map(|(_, purpose, state)| (purpose, state))
        .collect();
    assert_eq!(states.len(), 2);
    assert!(states.contains(&(ACCESS, KeyState::Current)));
    assert!(states.contains(&(ID, KeyState::Current)));
}

/// Nodes and the CLI rotating both lineages at once, all from the same
/// current keys: each lineage rotates exactly once.
pub async fn racing_rotations_rotate_each_lineage_once(backend: &impl Backend) {
    const RACERS: usize = 8;
    let store = backend.open().await;
    for k in [
        lineage_key("a-current", ACCESS, KeyState::Current),
        lineage_key("a-next", ACCESS, KeyState::Next),
        lineage_key("i-current", ID, KeyState::Current),
        lineage_key("i-next", ID, KeyState::Next),
    ] {
        store.insert_signing_key(&k).await.expect("insert");
    }
    let start = Arc::new(Barrier::new(2 * RACERS));
    let tasks: Vec<_> = (0..2 * RACERS)
        .map(|i| {
            let store = Arc::clone(&store);
            let start = Arc::clone(&start);
            let (purpose, expected) = if i % 2 == 0 {
                (ACCESS, "a-current")
            } else {
                (ID, "i-current")
            };
            let new_next = lineage_key(&format!("new-{i}"), purpose, KeyState::Next);
            tokio::spawn(async move {
                start.wait().await;
                let won = store
                    .rotate_signing_keys(expected, &new_next, T0 + 100)
                    .await;
                (purpose, won.expect("rotate must not fail under contention"))
            })
        })
        .collect();
    let mut winners = BTreeMap::new();
    for task in tasks {
        let (purpose, won) = task.await.expect("racer task");
        *winners.entry(purpose).or_insert(0) += usize::from(won);
    }
    assert_eq!(winners, BTreeMap::from([(ACCESS, 1), (ID, 1)]));
    for purpose in [ACCESS, ID] {
        let keys = of_lineage(&*store, purpose).await;
        let count = |state| keys.iter().filter(|k| k.state == state).count();
        let states = [KeyState::Current, KeyState::Next, KeyState::Retired];
        assert_eq!(states.map(count), [1, 1, 1], "{purpose:?}");
    }
}

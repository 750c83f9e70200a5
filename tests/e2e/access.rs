//! Every row of docs/api.md §5 for GET, list, download URL, PATCH and DELETE.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

const VISIBILITIES: [&str; 4] = ["public", "private", "protected", "shared"];

/// What a caller may do with a file of a visibility: (read projection, may modify).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Read {
    Full,
    Public,
    Denied,
    NotFound,
}

/// For a file visibility: what the caller may read, and whether it may modify.
type Rule = fn(&str) -> (Read, bool);

fn is_public_projection(f: &Value) -> bool {
    f.get("s3Key").is_none()
        && f.get("sharedWith").is_none()
        && f["metadata"].get("custom").is_none()
        && f["metadata"].get("relatedEntityId").is_none()
}

#[tokio::test]
async fn section_5_table() {
    let s = spawn();
    let alice = s.user("alice");
    let extra = json!({"sharedWith": ["bob"], "metadata": {"custom": {"k": 1}, "relatedEntityId": "post-1", "alt": "x"}});
    let mut files = Vec::new();
    for vis in VISIBILITIES {
        let mut e = extra.clone();
        e["visibility"] = json!(vis);
        files.push((
            vis,
            s.upload(&alice, &format!("{vis}.txt"), "text/plain", b"abc", e)
                .await,
        ));
    }
    let other_project_key = s.cli(&[
        "keys",
        "create",
        "--project",
        "other",
        "--env",
        "dev",
        "--kind",
        "secret",
    ]);
    let other_env_key = s.cli(&[
        "keys",
        "create",
        "--project",
        "demo",
        "--env",
        "prod",
        "--kind",
        "secret",
    ]);
    let callers: Vec<(&str, Creds, Rule)> = vec![
        ("owner", alice.clone(), |_| (Read::Full, true)),
        ("admin user", s.admin_user("root"), |_| (Read::Full, true)),
        ("service", s.service(), |_| (Read::Full, true)),
        ("named in sharedWith", s.user("bob"), |v| match v {
            "public" | "protected" | "shared" => (Read::Public, false),
            _ => (Read::Denied, false),
        }),
        ("stranger", s.user("carol"), |v| match v {
            "public" | "protected" => (Read::Public, false),
            _ => (Read::Denied, false),
        }),
        (
            "other project admin",
            Creds {
                key: other_project_key,
                token: None,
            },
            |_| (Read::NotFound, false),
        ),
        (
            "other environment admin",
            Creds {
                key: other_env_key,
                token: None,
            },
            |_| (Read::NotFound, false),
        ),
    ];
    for (who, creds, rule) in &callers {
        let (_, list) = s.get("/v1/files?limit=100", creds).await;
        let listed: Vec<&str> = list["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|f| f["originalName"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        for (vis, file) in &files {
            let id = file["id"].as_str().expect("id");
            let (read, modify) = rule(vis);
            let ctx = format!("{who} on {vis}");
            let got = s.get(&format!("/v1/files/{id}"), creds).await;
            let dl = s
                .post(&format!("/v1/files/{id}/download-url"), creds, json!({}))
                .await;
            match read {
                Read::Full => {
                    assert_eq!(got.0, 200, "{ctx}");
                    assert_eq!(got.1["s3Key"], file["s3Key"], "{ctx}: full object");
                    assert_eq!(got.1["metadata"]["custom"], json!({"k": 1}), "{ctx}");
                    assert_eq!(dl.0, 200, "{ctx}");
                }
                Read::Public => {
                    assert_eq!(got.0, 200, "{ctx}");
                    assert!(
                        is_public_projection(&got.1),
                        "{ctx}: public projection {}",
                        got.1
                    );
                    assert_eq!(got.1["metadata"]["alt"], "x");
                    assert_eq!(dl.0, 200, "{ctx}");
                }
                Read::Denied => {
                    assert_error(&got, 403, "file/access-denied");
                    assert_error(&dl, 403, "file/access-denied");
                }
                Read::NotFound => {
                    assert_error(&got, 404, "file/not-found");
                    assert_error(&dl, 404, "file/not-found");
                }
            }
            let name = format!("{vis}.txt");
            let in_list = listed.contains(&name.as_str());
            assert_eq!(
                in_list,
                matches!(read, Read::Full | Read::Public),
                "{ctx}: listed"
            );
            if in_list {
                let item = list["items"]
                    .as_array()
                    .and_then(|a| a.iter().find(|f| f["originalName"] == name.as_str()))
                    .expect("item");
                assert_eq!(
                    is_public_projection(item),
                    read == Read::Public,
                    "{ctx}: list projection"
                );
            }
            if !modify {
                let want = if read == Read::NotFound {
                    (404, "file/not-found")
                } else {
                    (403, "file/access-denied")
                };
                let patch = s
                    .call(
                        Method::PATCH,
                        &format!("/v1/files/{id}"),
                        creds,
                        Some(json!({"originalName": "x"})),
                    )
                    .await;
                assert_error(&patch, want.0, want.1);
                let del = s
                    .call(Method::DELETE, &format!("/v1/files/{id}"), creds, None)
                    .await;
                assert_error(&del, want.0, want.1);
            }
        }
        let total = list["pagination"]["total"].as_u64();
        let visible = files
            .iter()
            .filter(|(v, _)| matches!(rule(v).0, Read::Full | Read::Public))
            .count() as u64;
        assert_eq!(
            total,
            Some(visible),
            "{who}: totals count only visible files"
        );
    }
    // Those who may modify: owner, admin user, service.
    for (i, (_, creds, _)) in callers.iter().take(3).enumerate() {
        let (vis, file) = &files[i];
        let id = file["id"].as_str().expect("id");
        let (status, patched) = s.call(Method::PATCH, &format!("/v1/files/{id}"), creds, Some(json!({"originalName": format!("renamed-{vis}.txt"), "metadata": {"alt": null, "custom": {"n": 2}}}))).await;
        assert_eq!(status, 200, "{patched}");
        assert_eq!(patched["originalName"], format!("renamed-{vis}.txt"));
        assert_eq!(
            patched["metadata"],
            json!({"custom": {"k": 1, "n": 2}, "relatedEntityId": "post-1"}),
            "merge patch"
        );
        assert!(
            patched["updatedAt"].as_str() > file["updatedAt"].as_str(),
            "updatedAt moves"
        );
        assert_eq!(patched["createdAt"], file["createdAt"]);
        let (status, _) = s
            .call(Method::DELETE, &format!("/v1/files/{id}"), creds, None)
            .await;
        assert_eq!(status, 200);
    }
}

#[tokio::test]
async fn list_filters_sorts_and_cursor() {
    let s = spawn();
    let alice = s.user("alice");
    let svc = s.service();
    for (name, mime, vis) in [
        ("b.png", "image/png", "public"),
        ("a.jpg", "image/jpeg", "private"),
        ("50%_off.txt", "text/plain", "private"),
        ("500 off.txt", "text/plain", "protected"),
    ] {
        // Images start with their signature (registration checks it); the
        // JPEG is the larger of the two.
        let body = match mime {
            "image/png" => [b"\x89PNG\r\n\x1a\n".as_slice(), name.as_bytes()].concat(),
            "image/jpeg" => [&[0xFF, 0xD8, 0xFF][..], name.as_bytes(), &[0; 10]].concat(),
            _ => name.as_bytes().to_vec(),
        };
        s.upload(&alice, name, mime, &body, json!({"visibility": vis}))
            .await;
    }
    s.upload(&svc, "Zed.bin", "application/octet-stream", b"z", json!({}))
        .await;
    let names = |v: &Value| {
        v["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|f| f["originalName"].as_str().map(str::to_owned))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    let (_, v) = s
        .get("/v1/files?sortBy=originalName&sortDirection=asc", &svc)
        .await;
    assert_eq!(
        names(&v),
        ["50%_off.txt", "500 off.txt", "Zed.bin", "a.jpg", "b.png"],
        "code-point order"
    );
    let (_, v) = s
        .get("/v1/files?search=50%25_&sortBy=originalName", &svc)
        .await;
    assert_eq!(names(&v), ["50%_off.txt"], "% and _ are literal");
    let (_, v) = s.get("/v1/files?search=ZED", &svc).await;
    assert_eq!(names(&v), ["Zed.bin"], "case-insensitive");
    let (_, v) = s
        .get(
            "/v1/files?mimeType=image/*&sortBy=size&sortDirection=asc",
            &svc,
        )
        .await;
    assert_eq!(names(&v), ["b.png", "a.jpg"]);
    let (_, v) = s.get("/v1/files?ownerType=service", &svc).await;
    assert_eq!(names(&v), ["Zed.bin"]);
    let (_, v) = s.get("/v1/files?ownerType=session", &svc).await;
    assert_eq!(v["pagination"]["total"], 0);
    let (_, v) = s
        .get(
            "/v1/files?ownerId=alice&visibility=private&sortBy=originalName&sortDirection=desc",
            &svc,
        )
        .await;
    assert_eq!(names(&v), ["a.jpg", "50%_off.txt"]);
    let (_, v) = s.get("/v1/files?page=9&limit=2", &svc).await;
    assert_eq!(
        (
            v["items"].as_array().map(Vec::len),
            v["pagination"]["total"].as_u64(),
            v["pagination"]["totalPages"].as_u64(),
            v["pagination"]["hasPrevPage"].as_bool()
        ),
        (Some(0), Some(5), Some(3), Some(true))
    );

    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => {
                format!("/v1/files?limit=2&sortBy=originalName&sortDirection=asc&cursor={c}")
            }
            None => "/v1/files?limit=2&sortBy=originalName&sortDirection=asc".to_owned(),
        };
        let (status, v) = s.get(&path, &svc).await;
        assert_eq!(status, 200, "{v}");
        walked.extend(names(&v));
        cursor = v["pagination"]["nextCursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            assert_eq!(v["pagination"]["hasNextPage"], false);
            break;
        }
    }
    assert_eq!(
        walked,
        ["50%_off.txt", "500 off.txt", "Zed.bin", "a.jpg", "b.png"]
    );
}

//! `/kernels/` for real: a server without builds on the harness's data
//! directory, kernel files and links written into `kernel-directory` by
//! hand as the kernel pipeline writes them, and a real client (plus raw TCP
//! where a client would tidy the path).

use reqwest::header::{
    ACCEPT_RANGES, ALLOW, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, LAST_MODIFIED, RANGE,
};
use reqwest::StatusCode;
use serde_json::Value;
use std::os::unix::fs::symlink;
use std::path::Path;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zos_build_testkit::server as support;

/// The commit file of branch `master`, ten bytes `0123456789`.
const FILE: &str = "zero-os-master-generic-0123456789.efi";
/// The moving links the pipeline points at it.
const LINK: &str = "zero-os-master-generic.efi";
const SHORT_LINK: &str = "zero-os-master.efi";

/// A server that runs no builds, whose kernel directory holds [`FILE`],
/// its two links, and a hidden write in progress.
async fn server() -> support::Harness {
    let mut h = support::Harness::prepare("").await;
    h.restart(false).await;
    let dir = &h.config.kernel_directory;
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(FILE), b"0123456789").unwrap();
    symlink(FILE, dir.join(LINK)).unwrap();
    symlink(FILE, dir.join(SHORT_LINK)).unwrap();
    std::fs::write(
        dir.join(".zero-os-master-generic-fedcba9876.efi.part"),
        b"half",
    )
    .unwrap();
    h
}

async fn get(h: &support::Harness, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = h.client.get(h.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

fn header(response: &reqwest::Response, name: impl reqwest::header::AsHeaderName) -> &str {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or_default()
}

/// Sends `request` as written (no client tidies its path) and returns the
/// whole answer.
async fn raw(h: &support::Harness, request: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(h.address.unwrap())
        .await
        .unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn the_listing_shows_names_sizes_dates_and_link_targets() {
    let h = server().await;
    let dir = h.config.kernel_directory.clone();
    // A link the rule does not serve is listed, as not served.
    symlink("/etc/passwd", dir.join("outside.efi")).unwrap();
    std::fs::create_dir(dir.join("a-directory")).unwrap();

    let response = get(&h, "/kernels/", &[("Accept", "application/json")]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, CONTENT_TYPE), "application/json");
    let listing: Value = response.json().await.unwrap();
    assert_eq!(listing["truncated"], false, "{listing}");
    let kernels = listing["kernels"].as_array().unwrap();
    let names: Vec<&str> = kernels
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    // Sorted by name; no hidden write, no directory.
    assert_eq!(names, ["outside.efi", FILE, LINK, SHORT_LINK], "{listing}");
    let file = &kernels[1];
    assert_eq!(file["type"], "file");
    assert_eq!(file["size"], 10);
    assert_eq!(file["target"], Value::Null);
    let modified = file["modified"].as_str().unwrap();
    let parsed = humantime::parse_rfc3339(modified).unwrap();
    let age = std::time::SystemTime::now().duration_since(parsed).unwrap();
    assert!(age.as_secs() < 600, "{modified}");
    let link = &kernels[2];
    assert_eq!(link["type"], "link");
    assert_eq!(link["target"], FILE);
    // A link shows the size and date of the file it serves.
    assert_eq!(link["size"], 10);
    assert_eq!(link["modified"], modified);
    let outside = &kernels[0];
    assert_eq!(outside["target"], "/etc/passwd");
    assert_eq!(outside["size"], Value::Null);

    // Without Accept (or a browser's), the HTML page: the same facts.
    for (path, href) in [
        ("/kernels/", format!("href=\"{LINK}\"")),
        ("/kernels", format!("href=\"kernels/{LINK}\"")),
    ] {
        let response = get(
            &h,
            path,
            &[(
                "Accept",
                "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            )],
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, CONTENT_TYPE), "text/html; charset=utf-8");
        assert!(header(&response, "content-security-policy").contains("default-src 'none'"));
        let page = response.text().await.unwrap();
        assert!(page.contains(&href), "{page}");
        assert!(page.contains(&format!("<td class=\"size\">10</td><td>{modified}</td>")));
        assert!(page.contains(&format!(">{LINK}</a>")), "{page}");
        assert!(page.contains(&format!("→ {FILE}")), "{page}");
        assert!(page.contains("→ /etc/passwd (not served)"), "{page}");
        assert!(!page.contains(".zero-os-master"), "{page}");
        assert!(!page.contains("a-directory"), "{page}");
        assert!(!page.contains("<script"), "{page}");
        assert!(!page.contains("incomplete"), "{page}");
    }
    let plain = get(&h, "/kernels/", &[]).await;
    assert_eq!(header(&plain, CONTENT_TYPE), "text/html; charset=utf-8");
}

#[tokio::test]
async fn a_link_target_is_escaped_in_the_page() {
    let h = server().await;
    let dir = &h.config.kernel_directory;
    symlink("<script>alert(1)</script>", dir.join("evil.efi")).unwrap();
    let page = get(&h, "/kernels/", &[]).await.text().await.unwrap();
    assert!(!page.contains("<script>"), "{page}");
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );
}

#[tokio::test]
async fn a_missing_directory_is_an_empty_listing() {
    let mut h = support::Harness::prepare("").await;
    h.restart(false).await;
    assert!(!h.config.kernel_directory.exists());
    let response = get(&h, "/kernels/", &[("Accept", "application/json")]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let listing: Value = response.json().await.unwrap();
    assert_eq!(listing["kernels"], serde_json::json!([]));
    let page = get(&h, "/kernels/", &[]).await.text().await.unwrap();
    assert!(page.contains("No kernel yet"), "{page}");
}

#[tokio::test]
async fn the_listing_reads_at_most_10000_entries_and_says_so() {
    let h = server().await;
    let dir = &h.config.kernel_directory;
    for i in 0..10_001 {
        std::fs::write(dir.join(format!("k{i:05}.efi")), b"").unwrap();
    }
    let response = get(&h, "/kernels/", &[("Accept", "application/json")]).await;
    let listing: Value = response.json().await.unwrap();
    assert_eq!(listing["truncated"], true);
    assert_eq!(listing["limit"], 10_000);
    let listed = listing["kernels"].as_array().unwrap().len();
    assert!(listed <= 10_000 && listed > 9_000, "{listed}");
    let page = get(&h, "/kernels/", &[]).await.text().await.unwrap();
    assert!(
        page.contains("Only the first 10000 entries of the directory were read"),
        "the page does not say it is incomplete"
    );
}

#[tokio::test]
async fn a_file_and_its_links_are_served_with_their_headers() {
    let h = server().await;
    let mut etags = Vec::new();
    for name in [FILE, LINK, SHORT_LINK] {
        let response = get(&h, &format!("/kernels/{name}"), &[]).await;
        assert_eq!(response.status(), StatusCode::OK, "{name}");
        assert_eq!(header(&response, CONTENT_TYPE), "application/efi");
        assert_eq!(header(&response, CONTENT_LENGTH), "10");
        assert_eq!(header(&response, ACCEPT_RANGES), "bytes");
        assert!(header(&response, LAST_MODIFIED).ends_with(" GMT"));
        let etag = header(&response, ETAG).to_string();
        assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
        etags.push(etag);
        assert_eq!(response.bytes().await.unwrap().as_ref(), b"0123456789");
    }
    // The links serve the very file: the same validators.
    assert!(etags.iter().all(|e| *e == etags[0]), "{etags:?}");

    // HEAD: the same headers, no body.
    let get_answer = get(&h, &format!("/kernels/{LINK}"), &[]).await;
    let head = h
        .client
        .head(h.url(&format!("/kernels/{LINK}")))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    for name in [
        CONTENT_TYPE,
        CONTENT_LENGTH,
        ACCEPT_RANGES,
        ETAG,
        LAST_MODIFIED,
    ] {
        assert_eq!(
            head.headers().get(&name),
            get_answer.headers().get(&name),
            "{name}"
        );
    }
    assert!(head.bytes().await.unwrap().is_empty());
    let head = raw(
        &h,
        &format!("HEAD /kernels/{FILE} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("content-length: 10\r\n"), "{head}");
    assert!(
        head.ends_with("\r\n\r\n"),
        "a HEAD answer has a body: {head}"
    );

    // The client's copy is current: 304, no body.
    let response = get(
        &h,
        &format!("/kernels/{LINK}"),
        &[("If-None-Match", &etags[0])],
    )
    .await;
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(header(&response, ETAG), etags[0]);

    // The link moves to a new commit's file: new bytes, a new ETag.
    let dir = &h.config.kernel_directory;
    let next = "zero-os-master-generic-abcdef0123.efi";
    std::fs::write(dir.join(next), b"new kernel").unwrap();
    symlink(next, dir.join(".moving")).unwrap();
    std::fs::rename(dir.join(".moving"), dir.join(LINK)).unwrap();
    let response = get(
        &h,
        &format!("/kernels/{LINK}"),
        &[("If-None-Match", &etags[0])],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_ne!(header(&response, ETAG), etags[0]);
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"new kernel");
}

#[tokio::test]
async fn one_range_is_served_as_206_and_an_unsatisfiable_one_as_416() {
    let h = server().await;
    for name in [FILE, LINK] {
        let path = format!("/kernels/{name}");
        for (range, bytes, content_range) in [
            ("bytes=2-5", "2345", "bytes 2-5/10"),
            ("bytes=-3", "789", "bytes 7-9/10"),
            ("bytes=4-", "456789", "bytes 4-9/10"),
            ("bytes=0-0", "0", "bytes 0-0/10"),
            ("bytes=8-100", "89", "bytes 8-9/10"),
        ] {
            let response = get(&h, &path, &[("Range", range)]).await;
            assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT, "{range}");
            assert_eq!(header(&response, CONTENT_RANGE), content_range, "{range}");
            assert_eq!(header(&response, CONTENT_LENGTH), bytes.len().to_string());
            assert_eq!(header(&response, ACCEPT_RANGES), "bytes");
            assert_eq!(response.text().await.unwrap(), bytes, "{range}");
        }
        for range in ["bytes=100-200", "bytes=10-", "bytes=-0"] {
            let response = get(&h, &path, &[("Range", range)]).await;
            assert_eq!(
                response.status(),
                StatusCode::RANGE_NOT_SATISFIABLE,
                "{range}"
            );
            assert_eq!(header(&response, CONTENT_RANGE), "bytes */10");
        }
        // Several ranges, another unit, nonsense: the whole file.
        for range in ["bytes=0-1,4-5", "items=0-1", "bytes=5-2", "bytes=x-"] {
            let response = get(&h, &path, &[("Range", range)]).await;
            assert_eq!(response.status(), StatusCode::OK, "{range}");
            assert_eq!(header(&response, CONTENT_RANGE), "");
            assert_eq!(response.text().await.unwrap(), "0123456789");
        }
    }

    // If-Range: a range of this version only; another version gets all.
    let whole = get(&h, &format!("/kernels/{LINK}"), &[]).await;
    let etag = header(&whole, ETAG).to_string();
    let last_modified = header(&whole, LAST_MODIFIED).to_string();
    for validator in [etag.as_str(), last_modified.as_str()] {
        let response = get(
            &h,
            &format!("/kernels/{LINK}"),
            &[("Range", "bytes=2-5"), ("If-Range", validator)],
        )
        .await;
        assert_eq!(
            response.status(),
            StatusCode::PARTIAL_CONTENT,
            "{validator}"
        );
        assert_eq!(response.text().await.unwrap(), "2345");
    }
    let response = get(
        &h,
        &format!("/kernels/{LINK}"),
        &[("Range", "bytes=2-5"), ("If-Range", "\"another-version\"")],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "0123456789");

    // HEAD ignores Range (RFC 9110 defines it for GET only).
    let head = h
        .client
        .head(h.url(&format!("/kernels/{FILE}")))
        .header(RANGE, "bytes=2-5")
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(header(&head, CONTENT_LENGTH), "10");
}

#[tokio::test]
async fn a_range_of_a_large_file_is_exactly_its_bytes() {
    let h = server().await;
    let name = "zero-os-big-generic-0000000000.efi";
    // 1 MiB + 3 bytes of a pattern that shows any shift.
    let content: Vec<u8> = (0..(1 << 20) + 3u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(h.config.kernel_directory.join(name), &content).unwrap();
    let (first, last) = (65_530usize, 700_001usize);
    let response = get(
        &h,
        &format!("/kernels/{name}"),
        &[("Range", &format!("bytes={first}-{last}"))],
    )
    .await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        header(&response, CONTENT_RANGE),
        format!("bytes {first}-{last}/{}", content.len())
    );
    assert_eq!(
        response.bytes().await.unwrap().as_ref(),
        &content[first..=last]
    );
    let response = get(&h, &format!("/kernels/{name}"), &[]).await;
    assert_eq!(response.bytes().await.unwrap().as_ref(), content.as_slice());
}

/// Writes a file beside the kernel directory that no route may serve.
fn plant_secret(h: &support::Harness) -> &'static str {
    let data = h.config.kernel_directory.parent().unwrap();
    std::fs::write(data.join("secret.txt"), "TOP-SECRET").unwrap();
    "TOP-SECRET"
}

#[tokio::test]
async fn names_and_links_that_leave_the_directory_are_404() {
    let h = server().await;
    let secret = plant_secret(&h);
    let dir = &h.config.kernel_directory;
    std::fs::write(dir.join(".hidden"), "hidden").unwrap();
    std::fs::create_dir(dir.join("sub")).unwrap();
    std::fs::write(dir.join("sub").join("inner.efi"), "inner").unwrap();
    symlink("/etc/passwd", dir.join("passwd.efi")).unwrap();
    symlink("../secret.txt", dir.join("up.efi")).unwrap();
    symlink(
        dir.parent().unwrap().join("secret.txt"),
        dir.join("absolute.efi"),
    )
    .unwrap();
    symlink(LINK, dir.join("twice.efi")).unwrap();
    symlink("sub", dir.join("to-dir.efi")).unwrap();
    symlink("sub/inner.efi", dir.join("into-sub.efi")).unwrap();
    symlink("missing.efi", dir.join("dangling.efi")).unwrap();
    assert!(h.config.history_path().exists());

    for path in [
        "/kernels/..%2Fhistory.sqlite3",
        "/kernels/..%2Fsecret.txt",
        "/kernels/%2E%2E/secret.txt",
        "/kernels/.hidden",
        "/kernels/sub",
        "/kernels/sub/inner.efi",
        "/kernels/passwd.efi",
        "/kernels/up.efi",
        "/kernels/absolute.efi",
        "/kernels/twice.efi",
        "/kernels/to-dir.efi",
        "/kernels/into-sub.efi",
        "/kernels/dangling.efi",
        "/kernels/nothing.efi",
        "/kernels/zero-os-master-generic.efi%00",
    ] {
        let response = get(&h, path, &[]).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let body = response.text().await.unwrap();
        assert!(
            !body.contains(secret) && !body.contains("root:"),
            "{path}: {body}"
        );
        let response = get(&h, path, &[("Range", "bytes=0-3")]).await;
        assert_eq!(
            response.status(),
            StatusCode::NOT_FOUND,
            "{path} with a range"
        );
    }
    // Paths as written, which a client would have tidied.
    for path in [
        "/kernels/../secret.txt",
        "/kernels/../history.sqlite3",
        "/kernels/./../secret.txt",
        "/kernels//etc/passwd",
        "/kernels/.",
        "/kernels/..",
    ] {
        let answer = raw(
            &h,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 404"), "{path}: {answer}");
        assert!(
            !answer.contains(secret) && !answer.contains("root:"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn kernels_are_read_only() {
    let h = server().await;
    for path in [
        "/kernels/",
        "/kernels",
        &format!("/kernels/{FILE}"),
        "/kernels/nothing",
    ] {
        for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            let response = h
                .client
                .request(method.parse().unwrap(), h.url(path))
                .body("x")
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
            assert_eq!(header(&response, ALLOW), "GET, HEAD", "{method} {path}");
        }
    }
    // Nothing was changed.
    let dir = &h.config.kernel_directory;
    assert_eq!(std::fs::read(dir.join(FILE)).unwrap(), b"0123456789");
    assert!(!Path::new(&dir.join("nothing")).exists());
}

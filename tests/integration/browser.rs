//! A real headless Chromium for the tests of the sandbox's pages, driven over W3C WebDriver by
//! Debian's `chromedriver`. `.ci/run` installs the packages (`chromium`, `chromium-driver`);
//! without them a browser test fails saying so: it never passes by skipping.
//!
//! Chromium starts with a fresh profile and the switches that keep it off the network (this
//! machine has none, and without them Chromium waits on Google's hosts). A test that panics
//! leaves a screenshot of the page it was on under `target/test-output/<module>/`, and says where.

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Map, Value, json};

/// Long enough for a cold Chromium on a loaded 2-core machine; a page of the sandbox loads in
/// milliseconds.
const PATIENCE: Duration = Duration::from_secs(20);

const MISSING: &str = "the browser tests need Debian's `chromium` and `chromium-driver` \
     packages: `.ci/run` installs them when missing \
     (`apt-get install -y --no-install-recommends chromium chromium-driver`)";

/// A program on PATH, by name.
fn on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// One headless Chromium and the chromedriver that runs it; both end with [`Browser::close`] or
/// when dropped.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start() -> Browser {
        let chromium =
            on_path("chromium").unwrap_or_else(|| panic!("no `chromium` on PATH: {MISSING}"));
        let chromedriver = on_path("chromedriver")
            .unwrap_or_else(|| panic!("no `chromedriver` on PATH: {MISSING}"));
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let driver = Command::new(&chromedriver)
            .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}: {MISSING}", chromedriver.display()));
        let profile = tempfile::tempdir().expect("a temporary profile directory");
        let mut options = Map::new();
        options.insert("binary".into(), json!(chromium));
        options.insert(
            "args".into(),
            json!([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--no-proxy-server",
                "--window-size=900,1000",
                format!("--user-data-dir={}", profile.path().display()),
            ]),
        );
        let mut capabilities = Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert("goog:chromeOptions".into(), Value::Object(options));
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        // chromedriver takes a moment to listen; this waits for a process, not for sandbox time.
        let client = loop {
            let attempt = ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&url)
                .await;
            match attempt {
                Ok(client) => break client,
                Err(e) if started.elapsed() > PATIENCE => {
                    panic!("chromedriver at {url} started no Chromium session: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        Browser {
            client,
            driver,
            _profile: profile,
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("the page loads");
    }

    /// Waits for the element `css` (a page that has just been submitted may still be loading).
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .every(Duration::from_millis(20))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"))
    }

    /// The visible text of the element `css`.
    pub async fn text(&self, css: &str) -> String {
        self.find(css)
            .await
            .text()
            .await
            .expect("the element's text")
    }

    /// Waits until the element `css` reads `want`. Every page of the flow has a `#title`, so right
    /// after a click the old page can still answer: reading once would race the navigation.
    pub async fn expect_text(&self, css: &str, want: &str) {
        let started = Instant::now();
        loop {
            let seen = match self.client.find(Locator::Css(css)).await {
                Ok(element) => element.text().await.ok(),
                Err(_) => None,
            };
            if seen.as_deref() == Some(want) {
                return;
            }
            if started.elapsed() > PATIENCE {
                panic!("`{css}` reads {seen:?}, not {want:?}");
            }
            // Waits for the browser's navigation, not for sandbox time.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Replaces what the field `css` holds with `text`, typed key by key.
    pub async fn type_into(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field
            .clear()
            .await
            .unwrap_or_else(|e| panic!("clearing `{css}`: {e}"));
        field
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("typing into `{css}`: {e}"));
    }

    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking `{css}`: {e}"));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Where a failed browser test leaves its screenshot: `target/test-output/<module>/<test>.png`.
pub fn screenshot_path(module: &str, test: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .join("test-output")
        .join(module)
        .join(format!("{test}.png"))
}

/// Runs `steps` with a fresh browser. When they panic, the page the browser is on is saved to
/// [`screenshot_path`] and the path printed before the panic goes on.
pub async fn drive<F, Fut>(module: &str, test: &str, steps: F)
where
    F: FnOnce(std::sync::Arc<Browser>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let started = Instant::now();
    let browser = std::sync::Arc::new(Browser::start().await);
    let ready = started.elapsed();
    let outcome = tokio::spawn(steps(browser.clone())).await;
    let stepped = started.elapsed() - ready;
    if let Err(failure) = &outcome {
        let path = screenshot_path(module, test);
        match browser.client.screenshot().await {
            Ok(png) => {
                let _ = std::fs::create_dir_all(path.parent().expect("a folder"));
                match std::fs::write(&path, png) {
                    Ok(()) => eprintln!("screenshot of the failing page: {}", path.display()),
                    Err(e) => eprintln!("could not save the screenshot {}: {e}", path.display()),
                }
            }
            Err(e) => eprintln!("could not take a screenshot after `{failure}`: {e}"),
        }
    }
    // Ending the session makes Chromium exit; dropping the browser then ends chromedriver.
    let _ = browser.client.clone().close().await;
    drop(browser);
    // Shown with `--nocapture`: what a browser test costs, to keep it small.
    eprintln!(
        "{test}: browser ready in {:.2} s, steps {:.2} s, closed after {:.2} s in all",
        ready.as_secs_f64(),
        stepped.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    if let Err(failure) = outcome {
        match failure.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("the browser steps did not finish: {e}"),
        }
    }
}

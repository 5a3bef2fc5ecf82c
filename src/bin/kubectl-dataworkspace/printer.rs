//! Prints the view's rows as kubectl does: aligned columns under upper-case headers (`-o wide`
//! adds some), or the rows themselves as JSON or YAML. Colour only for tables, only when asked.

use dataworkspace_operator::view::{envs::EnvRow, runtime::RuntimeRow, usage::UsageRow};
use serde::Serialize;

/// The output format (`-o`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Aligned columns (the default).
    #[value(skip)]
    Table,
    /// Aligned columns, with more of them.
    Wide,
    /// The rows as JSON.
    Json,
    /// The rows as YAML.
    Yaml,
}

/// Whether tables get colour: only on a terminal, never when `NO_COLOR` is set to anything but
/// the empty string (no-color.org), and never for JSON or YAML.
pub fn use_colour(output: Output, terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    matches!(output, Output::Table | Output::Wide) && terminal && no_color.is_none_or(|v| v.is_empty())
}

/// What to print rows with.
#[derive(Clone, Copy, Debug)]
pub struct Printer {
    /// The format.
    pub output: Output,
    /// Colour in tables.
    pub colour: bool,
}

/// A colour a cell may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Colour {
    Green,
    Yellow,
    Red,
}

impl Colour {
    fn code(self) -> &'static str {
        match self {
            Colour::Green => "\x1b[32m",
            Colour::Yellow => "\x1b[33m",
            Colour::Red => "\x1b[31m",
        }
    }
}

/// One table cell: its text and colour.
struct Cell(String, Option<Colour>);

impl Cell {
    fn plain(text: impl Into<String>) -> Cell {
        Cell(text.into(), None)
    }
}

/// What a missing value shows as.
const NONE: &str = "<none>";

fn or_none(value: Option<&str>) -> Cell {
    Cell::plain(value.unwrap_or(NONE))
}

/// The JSON and YAML document: the rows under `items`, and whose view it is.
#[derive(Serialize)]
struct Items<'a, T> {
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    items: &'a [T],
}

impl Printer {
    /// The runtime view.
    pub fn runtime(&self, user: Option<&str>, rows: &[RuntimeRow]) -> Result<String, String> {
        let wide = self.output == Output::Wide;
        let mut headers = vec!["WORKSPACE", "PROJECT", "RUNTIME", "PHASE", "READY", "ENDPOINT", "AGE"];
        if wide {
            headers.extend(["NAMESPACE", "LIST", "ROLE", "REASON", "COMPONENTS"]);
        }
        let cells = rows.iter().map(|r| {
            let mut cells = vec![
                Cell::plain(&r.workspace),
                Cell::plain(&r.project),
                or_none(r.runtime.as_deref()),
                phase_cell(r.phase.as_deref()),
                ready_cell(r.ready.as_deref()),
                or_none(r.endpoint.as_deref()),
                or_none(r.age.map(|a| a.to_string()).as_deref()),
            ];
            if wide {
                cells.extend([
                    Cell::plain(&r.namespace),
                    Cell::plain(format!("{:?}", r.listing).to_lowercase()),
                    or_none(r.role.map(|r| format!("{r:?}").to_lowercase()).as_deref()),
                    or_none(r.reason.as_deref()),
                    or_none(r.components.map(|c| format!("{}/{}", c.ready, c.total)).as_deref()),
                ]);
            }
            cells
        });
        self.print(user, rows, &headers, cells.collect())
    }

    /// The environments view.
    pub fn envs(&self, user: Option<&str>, rows: &[EnvRow]) -> Result<String, String> {
        let wide = self.output == Output::Wide;
        let mut headers = vec!["NAMESPACE", "WORKSPACE", "NAME", "REQUESTER", "STATE", "AGE"];
        if wide {
            headers.extend(["REASON", "APPROVER", "PYTHON", "SPEC-HASH"]);
        }
        let cells = rows.iter().map(|r| {
            let mut cells = vec![
                Cell::plain(&r.namespace),
                Cell::plain(&r.workspace),
                Cell::plain(&r.name),
                or_none(r.requester.as_deref()),
                Cell(r.state.clone(), state_colour(&r.state)),
                or_none(r.age.map(|a| a.to_string()).as_deref()),
            ];
            if wide {
                cells.extend([
                    or_none(r.reason.as_deref()),
                    or_none(r.approver.as_deref()),
                    Cell::plain(&r.python),
                    or_none(r.spec_hash.as_deref()),
                ]);
            }
            cells
        });
        self.print(user, rows, &headers, cells.collect())
    }

    /// The usage view.
    pub fn usage(&self, user: Option<&str>, rows: &[UsageRow]) -> Result<String, String> {
        let wide = self.output == Output::Wide;
        let mut headers = vec!["WORKSPACE", "RESOURCE", "USED", "HARD", "USE%"];
        if wide {
            headers.push("NAMESPACE");
        }
        let cells = rows.iter().map(|r| {
            let colour = r.percent.and_then(|p| match p {
                90.. => Some(Colour::Red),
                75.. => Some(Colour::Yellow),
                _ => None,
            });
            let mut cells = vec![
                Cell::plain(&r.workspace),
                Cell::plain(&r.resource),
                or_none(r.used.as_deref()),
                Cell::plain(&r.hard),
                Cell(r.percent.map_or(NONE.into(), |p| format!("{p}%")), colour),
            ];
            if wide {
                cells.push(Cell::plain(&r.namespace));
            }
            cells
        });
        self.print(user, rows, &headers, cells.collect())
    }

    fn print<T: Serialize>(
        &self,
        user: Option<&str>,
        rows: &[T],
        headers: &[&str],
        cells: Vec<Vec<Cell>>,
    ) -> Result<String, String> {
        let items = Items { user, items: rows };
        match self.output {
            Output::Json => serde_json::to_string_pretty(&items).map(|s| s + "\n").map_err(|e| e.to_string()),
            Output::Yaml => serde_yaml::to_string(&items).map_err(|e| e.to_string()),
            Output::Table | Output::Wide if rows.is_empty() => Ok(String::new()),
            Output::Table | Output::Wide => Ok(table(headers, &cells, self.colour)),
        }
    }
}

fn phase_cell(phase: Option<&str>) -> Cell {
    let colour = match phase {
        Some("Running" | "Succeeded") => Some(Colour::Green),
        Some("Pending" | "Provisioning" | "Degraded") => Some(Colour::Yellow),
        Some("Failed" | "NotFound") => Some(Colour::Red),
        _ => None,
    };
    Cell(phase.unwrap_or(NONE).into(), colour)
}

fn ready_cell(ready: Option<&str>) -> Cell {
    let colour = match ready {
        Some("True") => Some(Colour::Green),
        Some("False") => Some(Colour::Red),
        Some(_) => Some(Colour::Yellow),
        None => None,
    };
    Cell(ready.unwrap_or(NONE).into(), colour)
}

fn state_colour(state: &str) -> Option<Colour> {
    match state {
        "Ready" => Some(Colour::Green),
        "PendingApproval" | "Building" => Some(Colour::Yellow),
        "Rejected" | "Failed" => Some(Colour::Red),
        _ => None,
    }
}

/// Text as it may reach a terminal: control characters (C0, DEL, C1, which start escape
/// sequences that repaint or retitle a terminal or write its clipboard) and the characters that
/// reorder text (bidirectional overrides and isolates) are shown as `\u{..}` escapes. Names,
/// messages and requesters come from tenants, so nothing reaches the terminal raw.
pub fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        c.is_control()
            || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(
        text.chars()
            .map(|c| if unsafe_char(c) { format!("\\u{{{:04x}}}", u32::from(c)) } else { c.to_string() })
            .collect(),
    )
}

/// Columns as kubectl aligns them: each as wide as its widest cell plus three spaces, six at
/// least, the last one not padded. Widths count characters, and colour codes wrap the padded
/// text, so colour never shifts a column.
fn table(headers: &[&str], rows: &[Vec<Cell>], colour: bool) -> String {
    let rows: Vec<Vec<Cell>> = rows
        .iter()
        .map(|r| r.iter().map(|c| Cell(terminal_safe(&c.0).into_owned(), c.1)).collect())
        .collect();
    let rows = &rows;
    let width = |column: usize| {
        let cells = rows.iter().map(|r| r[column].0.chars().count());
        (cells.chain([headers[column].len()]).max().unwrap_or(0) + 3).max(6)
    };
    let widths: Vec<usize> = (0..headers.len()).map(width).collect();
    let line = |cells: Vec<(&str, Option<Colour>)>| {
        let last = cells.len() - 1;
        let mut line = String::new();
        for (column, (text, hue)) in cells.into_iter().enumerate() {
            let padded = match column == last {
                true => text.to_string(),
                false => format!("{text:<width$}", width = widths[column]),
            };
            match hue.filter(|_| colour) {
                Some(hue) => {
                    let trimmed = padded.trim_end();
                    line += &format!("{}{trimmed}\x1b[0m{}", hue.code(), &padded[trimmed.len()..]);
                }
                None => line += &padded,
            }
        }
        line.trim_end().to_string() + "\n"
    };
    let mut out = line(headers.iter().map(|h| (*h, None)).collect());
    for row in rows {
        out += &line(row.iter().map(|c| (c.0.as_str(), c.1)).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn tenant_text_never_reaches_the_terminal_raw() {
        use super::terminal_safe;
        assert_eq!(terminal_safe("alice@example.com"), "alice@example.com");
        // An OSC 52 clipboard write, a CSI repaint, a C1 CSI and a right-to-left override.
        for evil in
            ["\u{1b}]52;c;ZXZpbA==\u{7}", "a\u{1b}[2Jb", "x\u{9b}2Jy", "safe\u{202e}exe.txt", "new\nline"]
        {
            let shown = terminal_safe(evil);
            assert!(!shown.chars().any(|c| c.is_control() || c == '\u{202e}'), "{evil:?} -> {shown:?}");
            assert!(shown.contains("\\u{"), "{shown}");
        }
    }

    use dataworkspace_operator::{
        crd::{Project, PythonEnvironment, User, Workspace},
        view::{
            envs, runtime,
            scope::{self, Breadth, Viewer},
            usage,
        },
    };
    use k8s_openapi::jiff::Timestamp;

    use super::*;

    fn docs<K: serde::de::DeserializeOwned>(yaml: &str) -> Vec<K> {
        serde_yaml::Deserializer::from_str(yaml)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect()
    }

    const USERS: &str = r#"
metadata: {name: alice}
spec: {username: alice@example.com, teams: [data-engineering], pinned: [{namespace: dw-analytics, name: daily-etl}, {namespace: dw-analytics, name: retired}]}
status: {recent: [{namespace: dw-analytics, name: sales-dashboard}, {namespace: dw-analytics, name: daily-etl}]}
"#;

    const WORKSPACES: &str = r#"
metadata: {name: analytics}
spec: {members: [{team: data-engineering, role: developer}]}
status:
  namespace: dw-analytics
  usage:
    requests.cpu: {used: 3500m, hard: '4'}
    requests.memory: {used: 6Gi, hard: 16Gi}
    requests.storage: {used: 90Gi, hard: 100Gi}
    pods: {used: '12', hard: '50'}
    services.loadbalancers: {used: '0', hard: '0'}
---
metadata: {name: marketing}
spec: {members: [{team: data-engineering, role: viewer}]}
status: {namespace: dw-marketing}
"#;

    const PROJECTS: &str = r#"
metadata: {name: daily-etl, namespace: dw-analytics, creationTimestamp: '2026-03-01T09:00:00Z'}
spec: {runtime: Airflow, airflow: {}}
status:
  phase: Running
  conditions: [{type: Ready, status: 'True', reason: Ready, message: '', lastTransitionTime: '2026-03-01T09:05:00Z'}]
  components: [{name: api-server, ready: true}, {name: scheduler, ready: true}]
  endpoints: [{name: ui, url: 'https://airflow.example.com/'}]
---
metadata: {name: sales-dashboard, namespace: dw-analytics, creationTimestamp: '2026-03-02T11:55:00Z'}
spec: {runtime: Streamlit, streamlit: {}}
status:
  phase: Provisioning
  conditions: [{type: Ready, status: 'False', reason: ComponentsNotReady, message: '', lastTransitionTime: '2026-03-02T11:55:00Z'}]
  components: [{name: app, ready: false}]
---
metadata: {name: exploration, namespace: dw-analytics, creationTimestamp: '2026-02-28T12:00:00Z'}
spec: {runtime: Notebook, notebook: {}}
status:
  phase: Stopped
  conditions: [{type: Ready, status: 'True', reason: Stopped, message: '', lastTransitionTime: '2026-02-28T12:00:00Z'}]
  endpoints: [{name: lab, url: 'http://exploration.dw-analytics.svc:8888/'}]
---
metadata: {name: campaign-model, namespace: dw-marketing, creationTimestamp: '2025-12-01T12:00:00Z'}
spec: {runtime: Spark, spark: {}}
status:
  phase: Failed
  conditions: [{type: Ready, status: 'False', reason: InvalidSpec, message: '', lastTransitionTime: '2025-12-01T12:00:00Z'}]
"#;

    const ENVIRONMENTS: &str = r#"
metadata: {name: pandas, namespace: dw-analytics, generation: 1, creationTimestamp: '2026-03-02T10:00:00Z'}
spec: {packages: [pandas==2.3.3]}
status:
  observedGeneration: 1
  phase: PendingApproval
  requester: bob@example.com
  specHash: 3f1c9a
  conditions: [{type: Approved, status: 'False', reason: PendingApproval, message: '', lastTransitionTime: '2026-03-02T10:00:00Z'}]
---
metadata: {name: spark-ml, namespace: dw-marketing, generation: 1, creationTimestamp: '2026-02-20T10:00:00Z'}
spec: {pythonVersion: '3.11', packages: [scikit-learn]}
status:
  observedGeneration: 1
  phase: Ready
  requester: alice@example.com
  approver: carol@example.com
  specHash: 9be2d4
  conditions: [{type: Approved, status: 'True', reason: Approved, message: '', lastTransitionTime: '2026-02-20T10:00:00Z'}, {type: Ready, status: 'True', reason: Ready, message: '', lastTransitionTime: '2026-02-20T10:00:00Z'}]
"#;

    fn now() -> Timestamp {
        "2026-03-02T12:00:00Z".parse().unwrap()
    }

    fn runtime_rows() -> Vec<runtime::RuntimeRow> {
        let (users, workspaces): (Vec<User>, Vec<Workspace>) = (docs(USERS), docs(WORKSPACES));
        let scope =
            scope::resolve(Viewer::User("alice"), Breadth::Member, &users, &workspaces, &Default::default())
                .unwrap();
        runtime::rows(&scope, &docs::<Project>(PROJECTS), now())
    }

    fn printer(output: Output) -> Printer {
        Printer { output, colour: false }
    }

    #[test]
    fn runtime_table() {
        insta::assert_snapshot!(
            "runtime-table",
            printer(Output::Table).runtime(Some("alice"), &runtime_rows()).unwrap()
        );
    }

    #[test]
    fn runtime_wide() {
        insta::assert_snapshot!(
            "runtime-wide",
            printer(Output::Wide).runtime(Some("alice"), &runtime_rows()).unwrap()
        );
    }

    #[test]
    fn runtime_json() {
        insta::assert_snapshot!(
            "runtime-json",
            printer(Output::Json).runtime(Some("alice"), &runtime_rows()).unwrap()
        );
    }

    #[test]
    fn runtime_yaml() {
        insta::assert_snapshot!(
            "runtime-yaml",
            printer(Output::Yaml).runtime(Some("alice"), &runtime_rows()).unwrap()
        );
    }

    #[test]
    fn envs_table() {
        let (users, workspaces): (Vec<User>, Vec<Workspace>) = (docs(USERS), docs(WORKSPACES));
        let scope =
            scope::resolve(Viewer::User("alice"), Breadth::Member, &users, &workspaces, &Default::default())
                .unwrap();
        let rows = envs::rows(&scope, &docs::<PythonEnvironment>(ENVIRONMENTS), now());
        insta::assert_snapshot!("envs-table", printer(Output::Table).envs(None, &rows).unwrap());
        insta::assert_snapshot!("envs-wide", printer(Output::Wide).envs(None, &rows).unwrap());
    }

    #[test]
    fn usage_table() {
        let (users, workspaces): (Vec<User>, Vec<Workspace>) = (docs(USERS), docs(WORKSPACES));
        let scope =
            scope::resolve(Viewer::User("alice"), Breadth::Member, &users, &workspaces, &Default::default())
                .unwrap();
        let rows = usage::rows(&scope, &workspaces);
        insta::assert_snapshot!("usage-table", printer(Output::Table).usage(None, &rows).unwrap());
    }

    #[test]
    fn an_empty_view_prints_no_header_but_an_empty_list_as_json() {
        assert_eq!(printer(Output::Table).runtime(None, &[]).unwrap(), "");
        assert_eq!(printer(Output::Json).runtime(None, &[]).unwrap(), "{\n  \"items\": []\n}\n");
    }

    /// Removes ANSI colour sequences.
    fn strip(text: &str) -> String {
        let mut out = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                chars.by_ref().find(|c| *c == 'm');
            } else {
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn colour_never_shifts_a_column() {
        let rows = runtime_rows();
        let coloured = Printer { output: Output::Table, colour: true }.runtime(None, &rows).unwrap();
        assert!(coloured.contains("\x1b[32mRunning\x1b[0m"), "{coloured:?}");
        assert!(coloured.contains("\x1b[31mNotFound\x1b[0m"), "{coloured:?}");
        assert_eq!(strip(&coloured), printer(Output::Table).runtime(None, &rows).unwrap());
    }

    #[rstest::rstest]
    #[case::terminal(Output::Table, true, None, true)]
    #[case::wide_terminal(Output::Wide, true, None, true)]
    #[case::pipe(Output::Table, false, None, false)]
    #[case::no_color(Output::Table, true, Some("1"), false)]
    #[case::empty_no_color_is_unset(Output::Table, true, Some(""), true)]
    #[case::json(Output::Json, true, None, false)]
    #[case::yaml(Output::Yaml, true, None, false)]
    fn colour_only_for_tables_on_a_terminal_without_no_color(
        #[case] output: Output,
        #[case] terminal: bool,
        #[case] no_color: Option<&str>,
        #[case] expected: bool,
    ) {
        assert_eq!(use_colour(output, terminal, no_color.map(std::ffi::OsStr::new)), expected);
    }
}

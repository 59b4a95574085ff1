//! Placeholder HTML report; the real renderer replaces this file.

/// Renders the results JSON as a self-contained HTML page.
pub fn render_html(results: &serde_json::Value) -> String {
    format!("<html><body><pre>{}</pre></body></html>", results)
}

//! Issue 12, item 11: a test that cannot run here fails, naming what is
//! missing and how to get it; it never returns early and passes.

mod support;

/// The text of a caught panic.
fn panic_text(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn hole_11_a_missing_tool_fails_the_test() {
    let tool = "definitely-not-a-tool-xyz";
    let caught = std::panic::catch_unwind(|| support::require_tool(tool));
    let e = caught.expect_err("a missing tool must fail the test, not skip it");
    let text = panic_text(&*e);
    assert!(text.contains(tool), "the message names the tool: {text:?}");
    assert!(
        text.contains("scripts/test"),
        "the message says how to get it: {text:?}"
    );
    // A tool that is there is found, and its path handed back.
    let sh = support::require_tool("sh");
    assert!(sh.is_absolute() && sh.ends_with("sh"), "{}", sh.display());
}

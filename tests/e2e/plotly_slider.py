"""Where to click on a Plotly figure's slider (browser tests, benchmarks and the screenshot script share it)."""

SLIDER_POINTS_JS = """(key) => {
    // plotly.js puts step k (0-based) of n at 10 px + k / (n - 1) of the input area less 20 px; the rail rect is
    // inset 8 px, so at 2 px + that share of its width less 4 px (its numbers may skip steps when there are many)
    const root = document.querySelector(`.st-key-${key}`);
    const n = root.querySelector('.js-plotly-plot')._fullLayout.sliders[0].steps.length;
    const r = root.querySelector('.slider-rail-rect').getBoundingClientRect();
    return Array.from({length: n}, (_, k) => [r.x + 2 + (r.width - 4) * k / Math.max(1, n - 1), r.y + r.height / 2]);
}"""
"""JavaScript taking a Streamlit widget key: the page coordinates ``[x, y]`` of each slider step, in order."""

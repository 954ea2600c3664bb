//! An SVG chart of the latency distributions.

use crate::stats::{Stats, count};

/// A chart of the latency distributions: for each workload, one cumulative
/// curve per mode and concurrency, on a logarithmic time axis.
pub fn svg(stats: &[Stats]) -> String {
    const WIDTH: f64 = 900.0;
    const PANEL: f64 = 320.0;
    const LEFT: f64 = 60.0;
    const RIGHT: f64 = 200.0;
    const TOP: f64 = 40.0;
    const COLOURS: [&str; 8] = [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    ];
    let mut workloads: Vec<&str> = Vec::new();
    for s in stats {
        if !workloads.contains(&s.workload.as_str()) {
            workloads.push(&s.workload);
        }
    }
    let height = TOP + PANEL * count(workloads.len());
    let plot_width = WIDTH - LEFT - RIGHT;
    let plot_height = PANEL - 80.0;
    // 1 µs to 1 s, logarithmic.
    let x = |us: f64| LEFT + (us.max(1.0).log10() / 6.0).min(1.0) * plot_width;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{LEFT}\" y=\"24\" font-size=\"16\">Latency per call, a fresh isolate each \
         (cumulative share of calls)</text>\n"
    );
    for (panel, workload) in workloads.iter().enumerate() {
        let top = TOP + PANEL * count(panel) + 30.0;
        let bottom = top + plot_height;
        out.push_str(&format!(
            "<text x=\"{LEFT}\" y=\"{}\" font-size=\"14\">workload: {workload}</text>\n",
            top - 10.0
        ));
        out.push_str(&format!(
            "<rect x=\"{LEFT}\" y=\"{top}\" width=\"{plot_width}\" height=\"{plot_height}\" \
             fill=\"none\" stroke=\"#999\"/>\n"
        ));
        for (decade, label) in ["1µs", "10µs", "100µs", "1ms", "10ms", "100ms", "1s"]
            .iter()
            .enumerate()
        {
            let gx = LEFT + count(decade) / 6.0 * plot_width;
            out.push_str(&format!(
                "<line x1=\"{gx}\" y1=\"{top}\" x2=\"{gx}\" y2=\"{bottom}\" stroke=\"#eee\"/>\
                 <text x=\"{gx}\" y=\"{}\" text-anchor=\"middle\">{label}</text>\n",
                bottom + 16.0
            ));
        }
        let series: Vec<&Stats> = stats.iter().filter(|s| s.workload == *workload).collect();
        for (i, s) in series.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let dash = if s.concurrency > 1 {
                " stroke-dasharray=\"5,3\""
            } else {
                ""
            };
            let n = count(s.latencies_us.len().max(1));
            let points: Vec<String> = s
                .latencies_us
                .iter()
                .enumerate()
                .map(|(k, us)| {
                    let share = count(k + 1) / n;
                    format!("{:.1},{:.1}", x(*us), bottom - share * plot_height)
                })
                .collect();
            out.push_str(&format!(
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\"{dash} points=\"{}\"/>\n",
                points.join(" ")
            ));
            let ly = top + 14.0 * count(i) + 10.0;
            out.push_str(&format!(
                "<line x1=\"{}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{colour}\" stroke-width=\"2\"{dash}/>\
                 <text x=\"{}\" y=\"{}\">{:?} c={} ({:.0}/s)</text>\n",
                WIDTH - RIGHT + 10.0,
                WIDTH - RIGHT + 30.0,
                WIDTH - RIGHT + 35.0,
                ly + 4.0,
                s.mode,
                s.concurrency,
                s.calls_per_second
            ));
        }
    }
    out.push_str("</svg>\n");
    out
}

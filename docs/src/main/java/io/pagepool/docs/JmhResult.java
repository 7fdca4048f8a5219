package io.pagepool.docs;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One benchmark result from a JMH JSON file ({@code -rf json}): what the docs need of it.
 *
 * @param benchmark  class and method, without the package ({@code PagePoolBenchmark.fastPath})
 * @param threads    benchmark threads
 * @param params     the {@code @Param} values
 * @param score      primary score
 * @param error      primary score's 99.9% half-interval (NaN with fewer than 2 iterations)
 * @param unit       primary score's unit
 * @param secondary  secondary metrics by label ({@code gc.alloc.rate.norm}, aux counters, group members)
 * @param vm         JVM name and version as JMH recorded them
 * @param jvmArgs    the forked JVM's arguments as JMH recorded them
 */
record JmhResult(String benchmark, int threads, Map<String, String> params, double score, double error, String unit,
        Map<String, Metric> secondary, String vm, List<String> jvmArgs) {

    /** A secondary metric: its score and, per fork, its per-iteration values. */
    record Metric(double score, double error, String unit, List<List<Double>> rawData) {
    }

    String param(String name) {
        return params.getOrDefault(name, "");
    }

    /** A secondary metric's score, NaN when absent. */
    double secondary(String label) {
        Metric m = secondary.get(label);
        return m == null ? Double.NaN : m.score();
    }

    static List<JmhResult> load(Path file) throws IOException {
        try (Reader in = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
            JsonArray all = JsonParser.parseReader(in).getAsJsonArray();
            List<JmhResult> results = new ArrayList<>();
            for (JsonElement e : all) {
                results.add(of(e.getAsJsonObject()));
            }
            return Collections.unmodifiableList(results);
        }
    }

    private static JmhResult of(JsonObject o) {
        String full = o.get("benchmark").getAsString();
        String[] parts = full.split("\\.");
        String name = parts[parts.length - 2] + "." + parts[parts.length - 1];
        Map<String, String> params = new LinkedHashMap<>();
        if (o.has("params")) {
            for (Map.Entry<String, JsonElement> p : o.getAsJsonObject("params").entrySet()) {
                params.put(p.getKey(), p.getValue().getAsString());
            }
        }
        Metric primary = metric(o.getAsJsonObject("primaryMetric"));
        Map<String, Metric> secondary = new LinkedHashMap<>();
        if (o.has("secondaryMetrics")) {
            for (Map.Entry<String, JsonElement> m : o.getAsJsonObject("secondaryMetrics").entrySet()) {
                // JMH 1.37 writes gc metrics as "gc.alloc.rate.norm"; older versions prefix a middle dot.
                secondary.put(m.getKey().replace("\u00b7", ""), metric(m.getValue().getAsJsonObject()));
            }
        }
        String vm = o.get("vmName").getAsString() + " " + o.get("vmVersion").getAsString();
        List<String> jvmArgs = new ArrayList<>();
        if (o.has("jvmArgs")) {
            for (JsonElement a : o.getAsJsonArray("jvmArgs")) {
                jvmArgs.add(a.getAsString());
            }
        }
        return new JmhResult(name, o.get("threads").getAsInt(), Collections.unmodifiableMap(params), primary.score(),
                primary.error(), primary.unit(), Collections.unmodifiableMap(secondary), vm,
                Collections.unmodifiableList(jvmArgs));
    }

    private static Metric metric(JsonObject m) {
        double error = m.get("scoreError").isJsonPrimitive() && m.get("scoreError").getAsJsonPrimitive().isNumber()
                ? m.get("scoreError").getAsDouble() : Double.NaN;
        List<List<Double>> raw = new ArrayList<>();
        if (m.has("rawData")) {
            for (JsonElement fork : m.getAsJsonArray("rawData")) {
                List<Double> its = new ArrayList<>();
                for (JsonElement v : fork.getAsJsonArray()) {
                    its.add(v.getAsDouble());
                }
                raw.add(its);
            }
        }
        return new Metric(m.get("score").getAsDouble(), error, m.get("scoreUnit").getAsString(), raw);
    }
}

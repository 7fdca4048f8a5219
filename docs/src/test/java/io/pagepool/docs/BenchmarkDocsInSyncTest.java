package io.pagepool.docs;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/** The docs stay true: generated tables match the committed results, and every link resolves. */
class BenchmarkDocsInSyncTest {

    private static final Path DOCS = Path.of(System.getProperty("docs.dir", "."));
    private static final Pattern LINK = Pattern.compile("\\]\\(([^)#\\s]+)(#[^)]*)?\\)");

    @Test
    void benchmarkTablesAreTheOnesTheCommittedResultsProduce() throws IOException {
        BenchmarkDocs model = RenderBenchmarkDocs.load(DOCS);
        String md = Files.readString(DOCS.resolve(RenderBenchmarkDocs.BENCHMARKS_MD), StandardCharsets.UTF_8);
        assertEquals(RenderBenchmarkDocs.replaceSections(md, model.sections()), md,
                "docs/benchmarks.md differs from what docs/results/ produce: run `mvn -B -q -pl docs exec:java`"
                        + " and commit the result");
        String readme = Files.readString(RenderBenchmarkDocs.readme(DOCS), StandardCharsets.UTF_8);
        assertEquals(RenderBenchmarkDocs.replaceSections(readme, model.readmeSections()), readme,
                "README.md's figures differ from what docs/results/ produce: run `mvn -B -q -pl docs exec:java`");
    }

    @Test
    void everyRelativeLinkInTheDocsAndReadmeResolves() throws IOException {
        List<String> broken = new ArrayList<>();
        List<Path> files = new ArrayList<>();
        try (Stream<Path> s = Files.list(DOCS)) {
            s.filter(p -> p.toString().endsWith(".md")).forEach(files::add);
        }
        files.add(RenderBenchmarkDocs.readme(DOCS));
        for (Path file : files) {
            Matcher m = LINK.matcher(Files.readString(file, StandardCharsets.UTF_8));
            while (m.find()) {
                String target = m.group(1);
                if (target.contains("://") || target.startsWith("mailto:")) {
                    continue;
                }
                if (!Files.exists(file.getParent().resolve(target))) {
                    broken.add(file.getFileName() + " -> " + target);
                }
            }
        }
        assertTrue(broken.isEmpty(), "broken links: " + broken);
    }
}

// The Java client's partition for a key: kafka-clients' BuiltInPartitioner.partitionForKey,
// which its producer uses for every keyed record (murmur2 of the key bytes, made positive,
// modulo the partition count). Run by tests/partitioning.rs as a single-file program:
//
//   java -cp "$AUTHTRAIL_DEV_KAFKA_LIB/*" tests/partitioning/JavaPartitioner.java
//
// Reads lines "PARTITIONS<TAB>KEY-AS-HEX" and prints one partition per line.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.HexFormat;
import org.apache.kafka.clients.producer.internals.BuiltInPartitioner;

public class JavaPartitioner {
    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        StringBuilder out = new StringBuilder();
        String line;
        while ((line = in.readLine()) != null) {
            if (line.isEmpty()) continue;
            String[] parts = line.split("\t", -1);
            int partitions = Integer.parseInt(parts[0]);
            byte[] key = HexFormat.of().parseHex(parts[1]);
            out.append(BuiltInPartitioner.partitionForKey(key, partitions)).append('\n');
        }
        System.out.print(out);
    }
}

package userstream.connect;

import io.apicurio.registry.resolver.DefaultSchemaResolver;
import io.apicurio.registry.resolver.SchemaLookupResult;
import io.apicurio.registry.resolver.data.Record;
import io.apicurio.registry.serde.data.SerdeMetadata;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.avro.generic.GenericContainer;

/**
 * Apicurio's resolver, remembering its answer per (topic, key or value, Avro schema instance) for a while.
 *
 * <p>With auto-registration the default resolver renders the record's Avro schema to JSON and hashes that
 * text for every record, to find its content-keyed cache entry: about a sixth of the Connect worker's CPU
 * while it streams. The converter hands over the same Avro schema instance for as long as the table's
 * schema stays the same (it caches its Connect-to-Avro conversion), so the instance is a sound key. An
 * answer is kept for {@link #TTL_NANOS}, then asked of the default resolver again, which keeps its own
 * expiry and refresh against the registry.
 */
public final class MemoizingSchemaResolver<S, T> extends DefaultSchemaResolver<S, T> {
    static final long TTL_NANOS = 30_000_000_000L;

    private record Key(String topic, boolean isKey, Object schema) {
        @Override
        public boolean equals(Object other) {
            return other instanceof Key k && k.schema == schema && k.isKey == isKey && k.topic.equals(topic);
        }

        @Override
        public int hashCode() {
            return 31 * (31 * topic.hashCode() + Boolean.hashCode(isKey)) + System.identityHashCode(schema);
        }
    }

    private record Remembered<S>(SchemaLookupResult<S> result, long until) {}

    private final ConcurrentHashMap<Key, Remembered<S>> remembered = new ConcurrentHashMap<>();

    @Override
    public SchemaLookupResult<S> resolveSchema(Record<T> data) {
        if (!(data.payload() instanceof GenericContainer container)
                || !(data.metadata() instanceof SerdeMetadata metadata)
                || metadata.getTopic() == null) {
            return super.resolveSchema(data);
        }
        Key key = new Key(metadata.getTopic(), metadata.isKey(), container.getSchema());
        long now = System.nanoTime();
        Remembered<S> hit = remembered.get(key);
        if (hit != null && now - hit.until() < 0) {
            return hit.result();
        }
        SchemaLookupResult<S> result = super.resolveSchema(data);
        if (remembered.size() > 1_000) {
            remembered.clear(); // schemas that changed many times: start over rather than grow
        }
        remembered.put(key, new Remembered<>(result, now + TTL_NANOS));
        return result;
    }

    @Override
    public void reset() {
        remembered.clear();
        super.reset();
    }
}

package userstream.spark;

import com.datastax.oss.driver.api.core.CqlSession;
import com.datastax.spark.connector.cql.CassandraConnectionFactory;
import com.datastax.spark.connector.cql.CassandraConnectorConf;
import com.datastax.spark.connector.cql.DefaultConnectionFactory$;

/**
 * The connector's default sessions, each wrapped in a {@link BoundedRefreshSession}. Named by
 * {@code spark.cassandra.connection.factory}. System properties: {@code userstream.cassandra.refreshBoundMs}, how
 * long one refresh is waited for (default 5000), and {@code userstream.cassandra.refreshMinIntervalMs}, the least
 * time between two refreshes of one session (default 30000).
 */
public final class BoundedRefreshConnectionFactory implements CassandraConnectionFactory {
  private static final long BOUND_MS = Long.getLong("userstream.cassandra.refreshBoundMs", 5000L);
  private static final long MIN_INTERVAL_MS = Long.getLong("userstream.cassandra.refreshMinIntervalMs", 30000L);

  @Override
  public CqlSession createSession(CassandraConnectorConf conf) {
    return BoundedRefreshSession.wrap(
        DefaultConnectionFactory$.MODULE$.createSession(conf), BOUND_MS, MIN_INTERVAL_MS);
  }
}

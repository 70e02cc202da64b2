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
 *
 * <p>All instances are one: the connector keys its session cache by a conf that holds the factory, and that conf
 * is deserialized in every task. Without {@code equals} and {@code readResolve} each task's copy was a new key,
 * so each micro-batch opened a new session (90 alive at once on an executor).
 */
public final class BoundedRefreshConnectionFactory implements CassandraConnectionFactory {
  private static final long BOUND_MS = Long.getLong("userstream.cassandra.refreshBoundMs", 5000L);
  private static final long MIN_INTERVAL_MS = Long.getLong("userstream.cassandra.refreshMinIntervalMs", 30000L);

  private static final long serialVersionUID = 1L;
  private static final BoundedRefreshConnectionFactory INSTANCE = new BoundedRefreshConnectionFactory();

  private Object readResolve() {
    return INSTANCE;
  }

  @Override
  public boolean equals(Object other) {
    return other instanceof BoundedRefreshConnectionFactory;
  }

  @Override
  public int hashCode() {
    return BoundedRefreshConnectionFactory.class.getName().hashCode();
  }

  @Override
  public CqlSession createSession(CassandraConnectorConf conf) {
    return BoundedRefreshSession.wrap(
        DefaultConnectionFactory$.MODULE$.createSession(conf), BOUND_MS, MIN_INTERVAL_MS);
  }
}

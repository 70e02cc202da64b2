package userstream.spark;

import com.datastax.oss.driver.api.core.CqlSession;
import com.datastax.spark.connector.cql.CassandraConnectionFactory;
import com.datastax.spark.connector.cql.CassandraConnectorConf;
import com.datastax.spark.connector.cql.DefaultConnectionFactory$;

/**
 * The connector's default sessions, each wrapped in a {@link BoundedRefreshSession}. Named by
 * {@code spark.cassandra.connection.factory}; the refresh bound is {@code -Duserstream.cassandra.refreshBoundMs}
 * (default 5000).
 */
public final class BoundedRefreshConnectionFactory implements CassandraConnectionFactory {
  private static final long BOUND_MS = Long.getLong("userstream.cassandra.refreshBoundMs", 5000L);

  @Override
  public CqlSession createSession(CassandraConnectorConf conf) {
    return BoundedRefreshSession.wrap(DefaultConnectionFactory$.MODULE$.createSession(conf), BOUND_MS);
  }
}

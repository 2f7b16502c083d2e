import { DataSourcePlugin } from '@grafana/data';

import { ConfigEditor } from './components/ConfigEditor';
import { QueryEditor } from './components/QueryEditor';
import { DataSource } from './datasource';
import { PodwireOptions, PodwireQuery, PodwireSecureJsonData } from './types';

export const plugin = new DataSourcePlugin<DataSource, PodwireQuery, PodwireOptions, PodwireSecureJsonData>(DataSource)
  .setConfigEditor(ConfigEditor)
  .setQueryEditor(QueryEditor);
